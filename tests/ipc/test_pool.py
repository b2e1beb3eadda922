"""The pool against a real agent server (in-process, replay provider) on a real socket."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator

import pytest
import trio

from atomic import config
from atomic.agent.providers.base import Finish, TextDelta, Usage
from atomic.agent.providers.replay import ReplayProvider, split_words
from atomic.agent.server import AgentServer, serve_agent
from atomic.errors import (
    AgentUnavailable,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    PoolTimeout,
    ProviderError,
    UnknownProvider,
)
from atomic.ipc import codec, idle
from atomic.ipc.pool import AgentPool

LONG_TEXT = " ".join(f"w{i}" for i in range(400))
REQUEST = {"messages": [{"role": "user", "content": "print squares"}]}


@contextlib.asynccontextmanager
async def running(
    settings: config.Settings, provider: ReplayProvider | None = None
) -> AsyncIterator[tuple[AgentPool, AgentServer, ReplayProvider]]:
    provider = provider or ReplayProvider()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            agent: AgentServer = await nursery.start(
                lambda task_status: serve_agent(settings, providers={"replay": provider}, task_status=task_status)
            )
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            await wait_until(lambda: pool.statistics().connected == settings.ipc_pool_size)
            yield pool, agent, provider
            await pool.aclose()
            nursery.cancel_scope.cancel()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


async def test_streaming_order(ipc_settings) -> None:
    async with running(ipc_settings) as (pool, _agent, provider):
        tokens: list[str] = []
        done = await pool.generate(REQUEST, tokens.append)
        assert tokens[0] == split_words(provider.text)[0]  # the first delta leaves at once
        assert done["text"] == "".join(tokens) == provider.text
        assert done["provider"] == "replay"
        assert done["model"] == "replay-1"
        assert done["finish_reason"] == "stop"
        words = len(split_words(provider.text))
        assert done["usage"] == {
            "prompt_tokens": 2,
            "completion_tokens": words,
            "total_tokens": 2 + words,
            "estimated": True,
        }
        assert set(done) == {"text", "usage", "provider", "model", "finish_reason", "model_ms"}
        assert done["model_ms"] > 0
        s = pool.statistics()
        assert (s.requests, s.failures, s.idle, s.in_use) == (1, 0, 4, 0)


async def test_a_burst_of_deltas_leaves_in_few_frames(ipc_settings) -> None:
    # Replay at full speed yields 400 words back to back: they are joined, in order.
    async with running(ipc_settings, ReplayProvider(LONG_TEXT)) as (pool, _agent, _provider):
        tokens: list[str] = []
        done = await pool.generate({**REQUEST, "max_tokens": 1000}, tokens.append)
        assert "".join(tokens) == done["text"] == LONG_TEXT
        assert len(tokens) < 100, len(tokens)
        assert done["usage"]["completion_tokens"] == 400  # usage counts tokens, not frames


async def test_a_paced_stream_keeps_one_frame_per_delta(ipc_settings) -> None:
    text = "one two three four five six "
    async with running(ipc_settings, ReplayProvider(text, tokens_per_s=100)) as (pool, _agent, _provider):
        tokens: list[str] = []
        await pool.generate(REQUEST, tokens.append)
        assert tokens == split_words(text)


class _BurstThenPause(ReplayProvider):
    """Three deltas back to back, then a long silence before the end."""

    async def stream(self, request):  # type: ignore[override]
        for word in ("a ", "b ", "c "):
            await trio.lowlevel.checkpoint()
            yield TextDelta(word)
        await trio.sleep(0.5)
        yield Finish(usage=Usage(prompt_tokens=1, completion_tokens=3), model="burst", finish_reason="stop")


async def test_a_burst_is_not_held_back_by_a_pause(ipc_settings) -> None:
    async with running(ipc_settings, _BurstThenPause()) as (pool, _agent, _provider):
        arrived: list[tuple[str, float]] = []
        t0 = trio.current_time()
        done = await pool.generate(REQUEST, lambda text: arrived.append((text, trio.current_time() - t0)))
        assert "".join(t for t, _ in arrived) == done["text"] == "a b c "
        # All of it arrived long before the provider's pause ended (the flush timer).
        assert arrived[-1][1] < 0.3, arrived


async def test_request_fields_reach_the_provider(ipc_settings) -> None:
    async with running(ipc_settings) as (pool, _agent, _provider):
        done = await pool.generate({**REQUEST, "max_tokens": 3, "model": "replay/other"})
        assert done["finish_reason"] == "length"
        assert done["usage"]["completion_tokens"] == 3
        assert done["model"] == "other"
        totals = pool.agent_facts["usage_totals"]  # from the hello; refreshed by pings
        await pool.ping()
        totals = pool.agent_facts["usage_totals"]
        assert totals == [
            {"provider": "replay", "model": "other", "requests": 1, "prompt_tokens": 2,
             "completion_tokens": 3, "total_tokens": 5}
        ]


async def test_concurrent_requests_spread_over_connections(ipc_settings) -> None:
    provider = ReplayProvider(" ".join(["word"] * 30), tokens_per_s=300)
    async with running(ipc_settings, provider) as (pool, agent, _):
        peak = 0
        results = []

        def on_token(_: str) -> None:
            nonlocal peak
            peak = max(peak, pool.statistics().in_use)

        async def one() -> None:
            results.append(await pool.generate(REQUEST, on_token))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
        assert len(results) == 8
        assert all(r["usage"]["completion_tokens"] == 30 for r in results)
        assert peak == 4
        assert agent.statistics().connections_total == 4  # no new connections were needed
        s = pool.statistics()
        assert (s.requests, s.idle, s.in_use, s.waiting) == (8, 4, 0, 0)


async def test_saturated_pool_times_out(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_pool_size=1, ipc_acquire_timeout_s=0.2)
    provider = ReplayProvider(LONG_TEXT, tokens_per_s=200)
    async with running(settings, provider) as (pool, _agent, _), trio.open_nursery() as nursery:
        first = trio.Event()
        nursery.start_soon(pool.generate, REQUEST, lambda t: first.set())
        await first.wait()
        start = trio.current_time()
        with pytest.raises(PoolTimeout):
            await pool.generate(REQUEST)
        assert 0.2 <= trio.current_time() - start < 1.0
        assert pool.statistics().waiting == 0
        nursery.cancel_scope.cancel()


async def test_caller_cancellation_frees_the_connection(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_pool_size=1)
    provider = ReplayProvider(LONG_TEXT, tokens_per_s=200)
    async with running(settings, provider) as (pool, agent, _):
        seen: list[str] = []
        with trio.CancelScope() as scope:

            def on_token(text: str) -> None:
                seen.append(text)
                if len(seen) == 3:
                    scope.cancel()

            await pool.generate(REQUEST, on_token)
        assert scope.cancelled_caught
        # The connection came back clean: same connection, idle, agent generation stopped.
        s = pool.statistics()
        assert (s.connected, s.idle, s.in_use) == (1, 1, 0)
        a = agent.statistics()
        assert (a.active_generations, a.cancelled) == (0, 1)
        assert provider.active == 0
        sent = provider.tokens_sent
        await trio.sleep(0.05)
        assert provider.tokens_sent == sent < 50
        provider.tokens_per_s = 0
        provider._words = [split_words("short answer")]
        done = await pool.generate(REQUEST)
        assert done["text"] == "short answer"
        assert agent.statistics().connections_total == 1


async def test_on_token_error_cancels_remote_and_keeps_connection(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_pool_size=1)
    provider = ReplayProvider(LONG_TEXT, tokens_per_s=500)
    async with running(settings, provider) as (pool, agent, _):

        def explode(_: str) -> None:
            raise RuntimeError("consumer bug")

        with pytest.raises(RuntimeError):
            await pool.generate(REQUEST, explode)
        s = pool.statistics()
        assert (s.connected, s.idle, s.failures) == (1, 1, 1)
        assert agent.statistics().cancelled == 1


async def test_agent_error_is_rebuilt(ipc_settings) -> None:
    async with running(ipc_settings) as (pool, _agent, _):
        with pytest.raises(UnknownProvider) as info:
            await pool.generate({**REQUEST, "provider": "nope"})
        assert info.value.code == "unknown_provider"
        assert info.value.retryable is False
        with pytest.raises(ProviderError) as info2:
            await pool.generate({"messages": "not a list"})
        assert info2.value.code == "provider_request_error"
        assert "request.messages" in info2.value.message
        s = pool.statistics()
        assert (s.connected, s.idle, s.failures) == (4, 4, 2)


async def test_oversized_request_is_refused_locally(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_max_frame=1000)
    async with running(settings) as (pool, _agent, _):
        with pytest.raises(LocalProtocolError):
            await pool.generate({"messages": [{"role": "user", "content": "x" * 2000}]})
        assert pool.statistics().idle == 4
        assert (await pool.generate(REQUEST))["provider"] == "replay"


async def test_rogue_peer_closes_only_its_connection(ipc_settings) -> None:
    async with running(ipc_settings, ReplayProvider(LONG_TEXT, tokens_per_s=400)) as (pool, agent, _):
        async with trio.open_nursery() as nursery:
            tokens: list[str] = []
            nursery.start_soon(pool.generate, REQUEST, tokens.append)
            for payload in (b"not json", b"[1,2]", b'{"type":"generate"}', b'{"type":"bogus","id":1}'):
                rogue = await trio.open_unix_socket(ipc_settings.ipc_socket)
                await rogue.send_all(struct.pack(">I", len(payload)) + payload)
                reply = await read_until_eof(rogue)
                d = codec.FrameDecoder(1 << 20)
                d.receive_data(reply)
                error = codec.loads(d.next_frame())
                assert error["type"] == "error" and error["error"]["code"] == "protocol_error"
                await rogue.aclose()
            # Oversized: closed from the header alone.
            rogue = await trio.open_unix_socket(ipc_settings.ipc_socket)
            await rogue.send_all(struct.pack(">I", ipc_settings.ipc_max_frame + 1))
            await read_until_eof(rogue)
            await rogue.aclose()
            # A peer that dies mid-frame.
            rogue = await trio.open_unix_socket(ipc_settings.ipc_socket)
            await rogue.send_all(b"\x00\x00\x01")
            await rogue.aclose()
        assert agent.statistics().protocol_errors == 5
        assert "".join(tokens) == LONG_TEXT
        assert pool.statistics().connected == 4
        assert (await pool.generate(REQUEST))["finish_reason"] == "stop"


async def read_until_eof(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some():
            data += chunk
    return data


async def test_rogue_agent_breaks_only_the_pool_connection(ipc_settings) -> None:
    """An agent that answers garbage: the request fails, the pool drops that connection."""
    settings = ipc_settings.replace(ipc_pool_size=1)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(settings.ipc_socket)
    listener.listen()
    tsock = trio.socket.from_stdlib_socket(listener)

    async def rogue_agent() -> None:
        while True:
            sock, _ = await tsock.accept()
            stream = trio.SocketStream(sock)
            await stream.receive_some()  # hello
            await stream.send_all(codec.encode_message({"type": "hello", "providers": []}, 1 << 20))
            if await stream.receive_some():  # generate (b"": the pool hung up while idle)
                await stream.send_all(struct.pack(">I", 5) + b"junk!")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rogue_agent)
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            with pytest.raises(ConnectionBroken):
                await pool.generate(REQUEST)
            await wait_until(lambda: pool.statistics().reconnects == 1)
            assert pool.statistics().connected == 1
            await pool.aclose()
            nursery.cancel_scope.cancel()
    listener.close()


async def test_no_agent_is_agent_unavailable(ipc_settings) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            pool = AgentPool(ipc_settings)
            await nursery.start(pool.run)  # starts although nothing listens
            with pytest.raises(AgentUnavailable):
                await pool.generate(REQUEST)
            assert pool.status() == {"healthy": False, "pool_size": 4, "connected": 0, "providers": []}
            assert "unhealthy" in repr(pool)
            # The agent comes up: the pool connects on its own.
            agent = await nursery.start(
                lambda task_status: serve_agent(ipc_settings, providers={"replay": ReplayProvider()}, task_status=task_status)
            )
            await wait_until(lambda: pool.statistics().connected == 4)
            assert pool.status()["healthy"] is True
            assert pool.status()["providers"][0]["name"] == "replay"
            assert (await pool.generate(REQUEST))["finish_reason"] == "stop"
            assert isinstance(agent, AgentServer)
            await pool.aclose()
            with pytest.raises(AgentUnavailable):
                await pool.generate(REQUEST)
            nursery.cancel_scope.cancel()


async def test_pool_not_running(ipc_settings) -> None:
    with pytest.raises(AgentUnavailable):
        await AgentPool(ipc_settings).generate(REQUEST)


async def test_health_pings_and_agent_restart(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_health_interval_s=0.05)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            agent_scope = trio.CancelScope()

            async def agent_service(task_status) -> None:
                with agent_scope:
                    await serve_agent(settings, providers={"replay": ReplayProvider()}, task_status=task_status)

            await nursery.start(agent_service)
            await wait_until(lambda: pool.statistics().last_ping_rtt_ms is not None)
            assert pool.statistics().healthy
            agent_scope.cancel()
            await wait_until(lambda: pool.statistics().connected == 0)
            assert not pool.statistics().healthy
            await nursery.start(
                lambda task_status: serve_agent(settings, providers={"replay": ReplayProvider()}, task_status=task_status)
            )
            await wait_until(lambda: pool.statistics().connected == 4)
            assert pool.statistics().reconnects == 4
            assert (await pool.generate(REQUEST))["finish_reason"] == "stop"
            await pool.aclose()
            nursery.cancel_scope.cancel()


async def test_socket_is_private_and_stale_socket_replaced(ipc_settings) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(ipc_settings.ipc_socket)
    stale.close()  # a dead agent's leftover
    async with running(ipc_settings) as (_pool, _agent, _):
        assert os.stat(ipc_settings.ipc_socket).st_mode & 0o777 == 0o600
        # A second agent on the same live socket refuses to start.
        from atomic.errors import ConnectFailed

        with pytest.raises(ConnectFailed, match="already listening"):
            await serve_agent(ipc_settings, providers={"replay": ReplayProvider()})
    assert not os.path.exists(ipc_settings.ipc_socket)


async def test_tcp_transport(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_tcp="127.0.0.1:0")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            agent = await nursery.start(
                lambda task_status: serve_agent(settings, providers={"replay": ReplayProvider()}, task_status=task_status)
            )
            host, port = agent.address
            pool = AgentPool(settings.replace(ipc_tcp=f"{host}:{port}"))
            await nursery.start(pool.run)
            assert (await pool.generate(REQUEST))["provider"] == "replay"
            await pool.aclose()
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("epoll", [True, False], ids=["epoll", "tasks"])
async def test_idle_connections_notice_a_dead_agent_at_once(ipc_settings, monkeypatch, epoll) -> None:
    """No health ping needed: the idle watch sees the end of stream on every idle socket."""
    if epoll and not idle.HAVE_EPOLL:
        pytest.skip("no epoll here")
    monkeypatch.setattr(idle, "HAVE_EPOLL", epoll)
    settings = ipc_settings.replace(ipc_health_interval_s=3600.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            agent_scope = trio.CancelScope()

            async def agent_service(task_status) -> None:
                with agent_scope:
                    await serve_agent(settings, providers={"replay": ReplayProvider()}, task_status=task_status)

            await nursery.start(agent_service)
            await wait_until(lambda: pool.statistics().connected == 4)
            for _ in range(3):  # lend and return them a few times: the watch follows
                assert (await pool.generate(REQUEST))["finish_reason"] == "stop"
                await pool.ping()
            assert pool.statistics().last_ping_rtt_ms is not None
            agent_scope.cancel()
            await wait_until(lambda: pool.statistics().connected == 0, timeout=2.0)
            assert not pool.statistics().healthy
            await pool.aclose()
            nursery.cancel_scope.cancel()


async def test_pool_closed_mid_request(ipc_settings) -> None:
    settings = ipc_settings.replace(ipc_pool_size=1)
    provider = ReplayProvider(LONG_TEXT, tokens_per_s=200)
    async with running(settings, provider) as (pool, _agent, _):
        first = trio.Event()

        async def request() -> None:
            with pytest.raises(ConnectionClosed):
                await pool.generate(REQUEST, lambda t: first.set())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request)
            await first.wait()
            await pool.aclose()
        s = pool.statistics()
        assert (s.connected, s.in_use, s.failures) == (0, 0, 1)


async def test_stray_frames_on_an_idle_connection(ipc_settings) -> None:
    """A hello out of turn refreshes the facts and keeps the connection; garbage drops it."""
    settings = ipc_settings.replace(ipc_pool_size=1, ipc_health_interval_s=3600.0)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(settings.ipc_socket)
    listener.listen()
    tsock = trio.socket.from_stdlib_socket(listener)
    streams: list[trio.SocketStream] = []

    async def agent() -> None:
        while True:
            sock, _ = await tsock.accept()
            stream = trio.SocketStream(sock)
            await stream.receive_some()  # hello
            await stream.send_all(codec.encode_message({"type": "hello", "providers": []}, 1 << 20))
            streams.append(stream)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent)
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            await wait_until(lambda: len(streams) == 1 and pool.statistics().connected == 1)
            await streams[0].send_all(codec.encode_message({"type": "hello", "providers": [{"name": "x"}]}, 1 << 20))
            await wait_until(lambda: pool.status()["providers"] == [{"name": "x"}])
            assert pool.statistics().idle == 1 and pool.statistics().reconnects == 0
            await streams[0].send_all(struct.pack(">I", 5) + b"junk!")
            await wait_until(lambda: pool.statistics().reconnects == 1 and pool.statistics().connected == 1)
            await pool.aclose()
            nursery.cancel_scope.cancel()
    listener.close()
