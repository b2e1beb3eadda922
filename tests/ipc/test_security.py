"""The agent's TCP transport closed to strangers: the shared token in the handshake, TLS
through trio.SSLStream, and the refusal to listen where other machines reach it without
both. Real sockets on 127.0.0.1; certificates made by the test (trustme)."""

from __future__ import annotations

import logging
import re
from functools import partial

import pytest
import trio
import trustme

from atomic import config
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import AgentServer, listen_problems, serve_agent
from atomic.cli import main
from atomic.errors import AgentRefused, AgentUnavailable, ConfigError, ConnectionBroken, ConnectionClosed
from atomic.ipc.connection import handshake, open_connection
from atomic.ipc.pool import AgentPool

TOKEN = "s3cret-token-of-the-test"


async def _agent(nursery: trio.Nursery, settings: config.Settings, provider: ReplayProvider | None = None,
                 ) -> tuple[AgentServer, config.Settings]:
    """An agent on 127.0.0.1 (a free port); the settings a client uses to reach it."""
    listen = settings.replace(ipc_tcp="127.0.0.1:0")
    server: AgentServer = await nursery.start(
        partial(serve_agent, listen, providers={"replay": provider or ReplayProvider("hello there")}))
    host, port = server.address
    client = settings.replace(ipc_tcp=f"{host}:{port}", ipc_tls_cert=None, ipc_tls_key=None)
    return server, client


async def _hello(settings: config.Settings, token: str | None) -> dict:
    conn = await open_connection(settings)
    try:
        return await handshake(conn, token)
    finally:
        await conn.aclose()


async def test_a_client_without_the_token_or_with_a_wrong_one_is_refused(ipc_settings, nursery, caplog):
    caplog.set_level(logging.DEBUG)
    server, client = await _agent(nursery, ipc_settings.replace(ipc_token=TOKEN))
    with pytest.raises(AgentRefused) as info:
        await _hello(client, None)
    assert info.value.message == ("the agent refused the connection: this agent requires ATOMIC_IPC_TOKEN: "
                                  "the hello carried no token")
    with pytest.raises(AgentRefused, match="the hello carried a wrong one"):
        await _hello(client, "guess")
    facts = await _hello(client, TOKEN)
    assert facts["type"] == "hello" and facts["providers"]
    assert server.statistics().refused == 2
    # The token is never logged, nor the wrong guess.
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused an agent connection: no token (ATOMIC_IPC_TOKEN)" in text
    assert TOKEN not in text and "guess" not in text


async def test_a_first_frame_other_than_hello_is_refused(ipc_settings, nursery):
    server, client = await _agent(nursery, ipc_settings.replace(ipc_token=TOKEN))
    conn = await open_connection(client)
    try:
        await conn.send({"type": "ping", "id": 1})
        reply = await conn.receive()
        assert reply is not None and reply["error"]["code"] == "unauthorized"
        assert await conn.receive() is None  # and the agent closed the connection
    finally:
        await conn.aclose()
    assert server.statistics().refused == 1


async def test_the_pool_with_the_token_generates_and_without_it_reports_why(ipc_settings, nursery):
    _, client = await _agent(nursery, ipc_settings.replace(ipc_token=TOKEN))
    good = AgentPool(client.replace(ipc_token=TOKEN))
    await nursery.start(good.run)
    with trio.fail_after(10):
        done = await good.generate({"messages": [{"role": "user", "content": "hi"}]})
    assert done["text"] == "hello there"
    bad = AgentPool(client.replace(ipc_token="wrong", ipc_reconnect_s=5.0))
    await nursery.start(bad.run)
    with trio.fail_after(10), pytest.raises(AgentUnavailable) as info:
        await bad.generate({"messages": [{"role": "user", "content": "hi"}]})
    assert "the agent refused the connection: this agent requires ATOMIC_IPC_TOKEN" in info.value.message
    assert bad.status()["healthy"] is False
    await good.aclose()
    await bad.aclose()


async def test_over_tls_with_the_token(ipc_settings, nursery, tls_files):
    agent_settings = ipc_settings.replace(ipc_token=TOKEN, ipc_tls_cert=tls_files.cert, ipc_tls_key=tls_files.key)
    server, client = await _agent(nursery, agent_settings)
    client = client.replace(ipc_tls_ca=tls_files.ca)
    pool = AgentPool(client)
    await nursery.start(pool.run)
    tokens: list[str] = []
    with trio.fail_after(10):
        done = await pool.generate({"messages": [{"role": "user", "content": "hi"}]}, tokens.append)
        rtt = await pool.ping()
    assert done["text"] == "hello there" == "".join(tokens)
    assert rtt > 0 and server.statistics().refused == 0
    # The connection is TLS: frames go through the SSL stream, not straight to the socket.
    assert type(pool._conns[0].conn.stream).__name__ == "SSLStream"
    await pool.aclose()


async def test_a_plain_tcp_client_of_a_tls_agent_is_told_so(ipc_settings, nursery, tls_files):
    server, client = await _agent(nursery, ipc_settings.replace(ipc_tls_cert=tls_files.cert,
                                                                ipc_tls_key=tls_files.key, ipc_token=TOKEN))
    with pytest.raises(AgentRefused) as info:
        await _hello(client, TOKEN)  # no ATOMIC_IPC_TLS_CA: plain TCP
    assert info.value.message == ("the agent refused the connection: this agent speaks TLS on its TCP port: "
                                  "the client needs ATOMIC_IPC_TLS_CA (the CA of the agent's certificate)")
    assert server.statistics().refused == 1


async def test_a_tls_client_of_a_plain_agent_fails_clearly(ipc_settings, nursery, tls_files):
    _, client = await _agent(nursery, ipc_settings)
    with pytest.raises(AgentRefused) as info:
        await _hello(client.replace(ipc_tls_ca=tls_files.ca), None)
    assert info.value.message.startswith(f"TLS with the agent at {client.ipc_tcp} failed: ")
    assert info.value.message.endswith("(does the agent serve TLS (ATOMIC_IPC_TLS_CERT and ATOMIC_IPC_TLS_KEY "
                                       "set for it)?)")


async def test_an_agent_certificate_from_another_ca_is_refused(ipc_settings, nursery, tls_files, tmp_path):
    server, client = await _agent(nursery, ipc_settings.replace(ipc_tls_cert=tls_files.cert,
                                                                ipc_tls_key=tls_files.key))
    stranger = tmp_path / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(AgentRefused) as info:
        await _hello(client.replace(ipc_tls_ca=str(stranger)), None)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert "its certificate is not signed by ATOMIC_IPC_TLS_CA" in info.value.message
    with trio.fail_after(5):
        while server.statistics().refused < 1:  # the agent saw the handshake fail too
            await trio.sleep(0.01)


async def test_a_request_in_flight_over_tls_wakes_when_the_pool_closes(ipc_settings, nursery, tls_files):
    _, client = await _agent(nursery, ipc_settings.replace(ipc_tls_cert=tls_files.cert, ipc_tls_key=tls_files.key),
                             ReplayProvider("one two three four five six", tokens_per_s=1.0))
    pool = AgentPool(client.replace(ipc_tls_ca=tls_files.ca))
    await nursery.start(pool.run)
    failed: list[BaseException] = []

    async def slow() -> None:
        try:
            await pool.generate({"messages": [{"role": "user", "content": "hi"}]})
        except (AgentUnavailable, ConnectionClosed, ConnectionBroken) as exc:
            failed.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(slow)
            while pool.statistics().in_use == 0:
                await trio.sleep(0.01)
            await pool.aclose()  # closes the socket under the TLS stream
    assert len(failed) == 1


# --- where the agent may listen -----------------------------------------------------------------


def test_a_reachable_address_needs_the_token_and_tls(tls_files):
    base = config.load(env={})
    assert listen_problems(base.replace(ipc_tcp="127.0.0.1:7000")) == []
    assert listen_problems(base.replace(ipc_tcp="localhost:7000")) == []
    assert listen_problems(base.replace(ipc_tcp="[::1]:7000")) == []
    (line,) = listen_problems(base.replace(ipc_tcp="0.0.0.0:7000", ipc_token=TOKEN))
    assert line == ("ATOMIC_IPC_TCP='0.0.0.0:7000': the agent listens on an address other machines can reach only "
                    "with a token and TLS; set ATOMIC_IPC_TLS_CERT, ATOMIC_IPC_TLS_KEY (or listen on 127.0.0.1)")
    assert "ATOMIC_IPC_TOKEN" in listen_problems(base.replace(ipc_tcp="agent.internal:7000",
                                                              ipc_tls_cert=tls_files.cert, ipc_tls_key=tls_files.key))[0]
    assert listen_problems(base.replace(ipc_tcp="10.1.2.3:7000", ipc_token=TOKEN, ipc_tls_cert=tls_files.cert,
                                        ipc_tls_key=tls_files.key)) == []


async def test_serve_agent_will_not_open_such_a_listener(ipc_settings):
    with pytest.raises(ConfigError, match=re.escape("ATOMIC_IPC_TCP='0.0.0.0:0'")):
        await serve_agent(ipc_settings.replace(ipc_tcp="0.0.0.0:0"), providers={"replay": ReplayProvider()})


def test_atomic_agent_on_a_reachable_address_without_them_exits_2(capsys, monkeypatch, keep_logging):
    monkeypatch.delenv("ATOMIC_IPC_TOKEN", raising=False)
    assert main(["agent", "--agent-tcp", "0.0.0.0:7000", "--provider", "replay"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("atomic: configuration: ATOMIC_IPC_TCP='0.0.0.0:7000': the agent")


def test_the_token_is_masked_wherever_settings_are_shown():
    from atomic.reload import describe, plan_reload

    s = config.load(env={"ATOMIC_IPC_TOKEN": TOKEN})
    assert s.public()["ipc_token"] == "***"
    assert TOKEN not in describe(*plan_reload(config.load(env={}), s))


async def test_a_supervised_child_agent_on_tcp_with_tls_and_the_token(ipc_settings, tls_files, nursery):
    """One environment for both sides, as the systemd unit has it: the child agent serves
    TLS and asks for the token; the supervisor's readiness probe and the pool use both."""
    import os
    import socket
    import sys

    from atomic.agent.supervisor import AgentSupervisor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ipc_settings.replace(ipc_tcp=f"127.0.0.1:{port}", ipc_token=TOKEN, ipc_tls_cert=tls_files.cert,
                                    ipc_tls_key=tls_files.key, ipc_tls_ca=tls_files.ca, agent_start_timeout_s=30.0)
    child = [sys.executable, "-c",
             "from atomic import config; from atomic.agent.server import main; raise SystemExit(main(config.load()))"]
    supervisor = AgentSupervisor(settings, child, env={**os.environ, "ATOMIC_REPLAY_TEXT": "from a child"})
    assert supervisor.env["ATOMIC_IPC_TOKEN"] == TOKEN  # the child's environment, never its argv
    with trio.fail_after(60):
        await nursery.start(supervisor.run)
        pool = AgentPool(settings)
        await nursery.start(pool.run)
        done = await pool.generate({"messages": [{"role": "user", "content": "hi"}], "provider": "replay"})
    assert done["text"] == "from a child"
    await pool.aclose()
