"""The agent process: serves generation over the IPC socket.

One task per connection reads frames and dispatches by ``type``; each ``generate`` runs
in its own task under its own cancel scope, so the reader stays free to take a ``cancel``
(or a ``ping``) while tokens stream. A malformed or oversized frame gets one ``error``
frame back and closes that connection only; nothing a peer sends can stop the process.

On TCP the agent holds the provider keys for whoever reaches its port, so it can ask for
a shared token (``ATOMIC_IPC_TOKEN``: the first frame must be a ``hello`` carrying it,
compared in constant time, never logged) and serve TLS (``ATOMIC_IPC_TLS_CERT``/``_KEY``,
through ``trio.SSLStream``); a plain-TCP client of a TLS agent is told so in its own
framing before the connection closes. It refuses to listen on an address other machines
can reach without both (:func:`listen_problems`).
"""

from __future__ import annotations

import errno
import gc
import hmac
import logging
import math
import os
import signal
import socket as _stdsocket
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from .. import __version__, tracing
from ..config import Settings
from ..errors import (
    AtomicError,
    ConfigError,
    ConnectFailed,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    ProviderError,
    ProviderTimeout,
    RemoteProtocolError,
)
from ..ipc import messages as m
from ..ipc.connection import Connection
from ..tls import loopback, server_context
from .providers import build_providers
from .providers.base import Provider
from .router import Router, parse_request

log = logging.getLogger(__name__)

# Deltas closer together than this leave in one ``token`` frame (see TokenBatcher).


@dataclass(frozen=True)
class AgentStatistics:
    connections: int
    connections_total: int
    active_generations: int
    generations: int
    cancelled: int
    protocol_errors: int
    refused: int  # connections turned away: no or a wrong token, no TLS, a failed handshake


class AgentServer:
    """The state the agent's connections share; ``serve_agent`` runs it."""

    def __init__(self, settings: Settings, router: Router) -> None:
        self.settings = settings
        self.router = router
        self.address: str | tuple[str, int] = ""
        self.connections = 0
        self.connections_total = 0
        self.active_generations = 0
        self.generations = 0
        self.facts_version = 0
        self.cancelled = 0
        self.protocol_errors = 0
        self.refused = 0
        self.tls = (server_context(settings.ipc_tls_cert, settings.ipc_tls_key)
                    if settings.ipc_tcp and settings.ipc_tls_cert and settings.ipc_tls_key else None)
        self._token = settings.ipc_token.encode() if settings.ipc_token is not None else None

    def __repr__(self) -> str:
        return (
            f"<AgentServer {self.address!r} connections={self.connections} "
            f"active={self.active_generations} generations={self.generations}>"
        )

    def statistics(self) -> AgentStatistics:
        return AgentStatistics(
            connections=self.connections,
            connections_total=self.connections_total,
            active_generations=self.active_generations,
            generations=self.generations,
            cancelled=self.cancelled,
            protocol_errors=self.protocol_errors,
            refused=self.refused,
        )

    def facts(self) -> dict[str, Any]:
        """What ``hello`` and ``pong`` tell the client. ``facts_version`` rises whenever
        they may have changed, so a pong repeats them only when they did."""
        return {
            "version": __version__,
            "protocol": m.PROTOCOL_VERSION,
            "providers": self.router.describe(),
            "default_provider": self.settings.provider,
            "usage_totals": self.router.usage_totals(),
        }

    def token_ok(self, given: Any) -> bool:
        """Whether ``given`` is the configured token (constant time); True without one."""
        if self._token is None:
            return True
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self._token)

    def refuse(self, why: str) -> None:
        self.refused += 1
        log.warning("refused an agent connection: %s", why)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it closes. Never raises (but Cancelled)."""
        if self.tls is not None:
            secured = await self._start_tls(stream)
            if secured is None:
                with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                    await trio.aclose_forcefully(stream)
                return
            stream = secured
        conn = Connection(stream, max_frame=self.settings.ipc_max_frame)
        self.connections += 1
        self.connections_total += 1
        try:
            await _Session(self, conn).run()
        except Exception:
            log.exception("agent connection failed")
        finally:
            self.connections -= 1
            with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                await conn.aclose()


    async def _start_tls(self, stream: trio.abc.Stream) -> trio.SSLStream[Any] | None:
        """The server side of TLS; None (the caller closes) for a client that does not
        speak it (told so in plain framing first), a failed handshake, or silence."""
        assert self.tls is not None
        with trio.move_on_after(self.settings.ipc_connect_timeout_s):
            sock = getattr(stream, "socket", None)
            if sock is not None:
                try:
                    first = await sock.recv(1, _stdsocket.MSG_PEEK)
                except OSError:
                    return None
                if first and first[0] != 0x16:  # not a TLS handshake record
                    self.refuse("the client does not speak TLS")
                    await _send_refusal(Connection(stream, max_frame=self.settings.ipc_max_frame), "tls_required",
                                        "this agent speaks TLS on its TCP port: the client needs ATOMIC_IPC_TLS_CA "
                                        "(the CA of the agent's certificate)")
                    return None
            tls = trio.SSLStream(stream, self.tls, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                self.refuse(f"TLS handshake failed: {exc.__cause__ or exc}")
                return None
            return tls
        self.refuse("no TLS handshake in time")
        return None


async def _send_refusal(conn: Connection, code: str, message: str) -> None:
    try:
        await conn.send({"type": m.ERROR, "id": None,
                         "error": {"code": code, "message": message, "retryable": False}})
    except (ConnectionBroken, ConnectionClosed):
        pass


class _Session:
    """One client connection: the reader and its generation tasks."""

    def __init__(self, server: AgentServer, conn: Connection) -> None:
        self.server = server
        self.conn = conn
        self.active: dict[int, trio.CancelScope] = {}
        self.facts_sent = -1  # the facts_version this client last got
        self.authenticated = server.settings.ipc_token is None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                await self._read(nursery)
            finally:
                # The client is gone (or broke the protocol): its generations stop too.
                nursery.cancel_scope.cancel()

    async def _read(self, nursery: trio.Nursery) -> None:
        conn = self.conn
        while True:
            try:
                msg = await conn.receive()
                if msg is None:
                    return
                if not self.authenticated and not await self._authenticate(msg):
                    return
                await self._dispatch(msg, nursery)
            except RemoteProtocolError as exc:
                self.server.protocol_errors += 1
                log.warning("closing an agent connection: %s", exc.message)
                with trio.move_on_after(self.server.settings.cleanup_timeout_s):
                    try:
                        await conn.send(m.error(None, exc))
                    except (ConnectionBroken, ConnectionClosed):
                        pass
                return
            except (ConnectionBroken, ConnectionClosed):
                return

    async def _authenticate(self, msg: dict[str, Any]) -> bool:
        """The first frame of a client, when the agent asks for a token: a ``hello`` with
        the right one, or an ``error`` back (and the caller closes)."""
        if msg.get("type") == m.HELLO and self.server.token_ok(msg.get("token")):
            self.authenticated = True
            return True
        if msg.get("type") != m.HELLO:
            why = f"its first frame was {msg.get('type')!r}, not hello"
        else:
            why = "no token" if msg.get("token") is None else "a wrong token"
        self.server.refuse(f"{why} (ATOMIC_IPC_TOKEN)")
        with trio.move_on_after(self.server.settings.cleanup_timeout_s):
            await _send_refusal(self.conn, m.UNAUTHORIZED_CODE,
                                "this agent requires ATOMIC_IPC_TOKEN: the hello carried "
                                + ("no token" if msg.get("token") is None else "a wrong one"))
        return False

    async def _dispatch(self, msg: dict[str, Any], nursery: trio.Nursery) -> None:
        kind = msg.get("type")
        if kind == m.GENERATE:
            rid = m.request_id(msg)
            if rid in self.active:
                raise RemoteProtocolError(f"request id {rid} is already in use")
            try:
                request, provider = parse_request(msg.get("request"), self.server.settings)
            except ProviderError as exc:
                await self.conn.send(m.error(rid, exc))
                return
            scope = trio.CancelScope()
            self.active[rid] = scope
            nursery.start_soon(self._generate, rid, request, provider, scope, nursery, msg.get("trace"))
        elif kind == m.CANCEL:
            running = self.active.get(m.request_id(msg))
            if running is not None:  # else it has already ended: its terminal frame is sent
                running.cancel()
        elif kind == m.PING:
            pong: dict[str, Any] = {"type": m.PONG, "id": m.request_id(msg)}
            if self.facts_sent != self.server.facts_version:  # the client keeps what it got
                self.facts_sent = self.server.facts_version
                pong.update(self.server.facts())
            await self.conn.send(pong)
        elif kind == m.HELLO:
            self.facts_sent = self.server.facts_version
            await self.conn.send({"type": m.HELLO, **self.server.facts()})
        else:
            raise RemoteProtocolError(f"unknown message type {kind!r}")

    async def _generate(
        self, rid: int, request: Any, provider: str | None, scope: trio.CancelScope, nursery: trio.Nursery,
        trace: Any = None,
    ) -> None:
        server = self.server
        conn = self.conn
        server.active_generations += 1
        server.generations += 1
        reply: dict[str, Any] | None = None
        batcher = TokenBatcher(lambda text: conn.send(m.token(rid, text)), nursery, server.settings.token_batch_s)
        try:
            with scope, tracing.agent_span(trace, rid) as span:  # joins the job's trace (tracing on)
                with trio.move_on_after(server.settings.generate_timeout_s) as deadline:
                    try:
                        result = await server.router.generate(request, provider=provider, on_text=batcher.add)
                        await batcher.flush()
                    except (ConnectionBroken, ConnectionClosed):
                        return  # the client is gone; the reader sees it too
                    except (AtomicError, LocalProtocolError) as exc:
                        reply = m.error(rid, exc)
                        span.failed(exc.code)
                    except Exception as exc:
                        log.exception("generation %s failed", rid)
                        reply = m.error(rid, ProviderError(f"agent failure: {type(exc).__name__}: {exc}"))
                        span.failed("provider_error")
                    else:
                        reply = {"type": m.DONE, "id": rid, **result.to_wire()}
                        span.done(result.provider, result.model, result.usage.prompt_tokens,
                                  result.usage.completion_tokens, result.finish_reason)
                if deadline.cancelled_caught:
                    reply = m.error(
                        rid, ProviderTimeout(f"generation took longer than {server.settings.generate_timeout_s}s")
                    )
                    span.failed("provider_timeout")
            if scope.cancelled_caught:
                server.cancelled += 1
                reply = {
                    "type": m.ERROR,
                    "id": rid,
                    "error": {"code": m.CANCELLED_CODE, "message": "generation cancelled", "retryable": False},
                }
        finally:
            batcher.close()  # nothing more for rid after its terminal frame
            server.active_generations -= 1
            server.facts_version += 1  # usage totals moved
            del self.active[rid]
        if reply is not None:
            try:
                await conn.send(reply)
            except LocalProtocolError as exc:  # the answer is bigger than a frame may be
                await conn.send(m.error(rid, ProviderError(exc.message)))
            except (ConnectionBroken, ConnectionClosed):
                pass


class TokenBatcher:
    """One generation's deltas on their way to the client.

    A delta that comes ``interval`` (``token_batch_s``) or more after the last frame leaves at once, so a
    model's paced stream (a token every 5-50 ms) gains no latency. Deltas that come faster
    (replay at full speed, several SSE events in one read) wait at most ``interval``
    and leave joined, as one frame: each frame is a system call here, a wake-up and a
    decode in the server, and an event for every watcher of the job.
    """

    def __init__(self, send: Callable[[str], Awaitable[None]], nursery: trio.Nursery, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._nursery = nursery
        self._pending: list[str] = []
        self._next_free = -math.inf
        self._armed = False
        self._closed = False

    async def add(self, text: str) -> None:
        now = trio.current_time()
        if not self._pending and now >= self._next_free:
            self._next_free = now + self._interval
            await self._send(text)
            return
        self._pending.append(text)
        if not self._armed:
            self._armed = True
            self._nursery.start_soon(self._flush_at, self._next_free)

    async def flush(self) -> None:
        """Send what is pending now (taken before the send, so frames keep their order)."""
        if self._pending and not self._closed:
            text, self._pending = "".join(self._pending), []
            self._next_free = trio.current_time() + self._interval
            await self._send(text)

    def close(self) -> None:
        self._closed = True
        self._pending = []

    async def _flush_at(self, when: float) -> None:
        await trio.sleep_until(when)
        self._armed = False
        try:
            await self.flush()
        except (ConnectionBroken, ConnectionClosed):
            pass  # the generation's own send, or the reader, sees it too
        except AtomicError as exc:  # a frame too big: the done frame still has the text
            log.warning("could not send a token frame: %s", exc)


# --- listening -----------------------------------------------------------------------


def _remove_stale_socket(path: str) -> None:
    """Remove ``path`` if it is a socket nobody answers on; refuse if an agent does."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConnectFailed(f"{path} exists and is not a socket")
    probe = _stdsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ConnectFailed(f"cannot check the agent socket {path}: {exc}") from None
    else:
        raise ConnectFailed(f"another agent is already listening on {path}")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def listen_problems(settings: Settings) -> list[str]:
    """Why the agent must not listen as configured: a TCP address other machines can
    reach, without both the token and TLS."""
    if not settings.ipc_tcp:
        return []
    host = settings.ipc_tcp.rpartition(":")[0]
    if loopback(host):
        return []
    missing = [var for var, value in (("ATOMIC_IPC_TOKEN", settings.ipc_token),
                                      ("ATOMIC_IPC_TLS_CERT", settings.ipc_tls_cert),
                                      ("ATOMIC_IPC_TLS_KEY", settings.ipc_tls_key)) if value is None]
    if not missing:
        return []
    return [f"ATOMIC_IPC_TCP={settings.ipc_tcp!r}: the agent listens on an address other machines can reach "
            f"only with a token and TLS; set {', '.join(missing)} (or listen on 127.0.0.1)"]


async def open_listeners(settings: Settings) -> list[trio.SocketListener]:
    """Listeners on the Unix socket (mode 0600) or, with ``ipc_tcp``, on host:port.

    ConfigError when :func:`listen_problems` has any."""
    problems = listen_problems(settings)
    if problems:
        raise ConfigError("\n".join(problems))
    if settings.ipc_tcp:
        host, _, port = settings.ipc_tcp.rpartition(":")
        host = host.strip("[]")
        try:
            return await trio.open_tcp_listeners(int(port), host=host)
        except OSError as exc:
            raise ConnectFailed(f"cannot listen on {settings.ipc_tcp}: {exc}") from None
    path = settings.ipc_socket
    _remove_stale_socket(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConnectFailed(f"cannot listen on {path}: {exc}") from None
    return [trio.SocketListener(sock)]


async def serve_agent(
    settings: Settings,
    *,
    providers: Mapping[str, Provider] | None = None,
    task_status: trio.TaskStatus[AgentServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled. ``started(server)`` once listening with providers built.

    ``providers`` replaces the registry's (tests, benchmarks).
    """
    if providers is None:
        providers = await trio.to_thread.run_sync(build_providers, settings)
    router = Router(settings, providers)
    server = AgentServer(settings, router)
    listeners: list[trio.SocketListener] = []
    try:
        listeners = await open_listeners(settings)
        if settings.ipc_tcp:
            server.address = listeners[0].socket.getsockname()[:2]
        else:
            server.address = settings.ipc_socket
        log.info("agent listening on %s with providers %s", server.address, sorted(providers))
        async with trio.open_nursery() as nursery:
            task_status.started(server)
            await trio.serve_listeners(server.handle, listeners, handler_nursery=nursery)
    finally:
        with trio.move_on_after(settings.cleanup_timeout_s, shield=True):
            for listener in listeners:
                await listener.aclose()
            await router.aclose()
        if listeners and not settings.ipc_tcp:
            try:
                os.unlink(settings.ipc_socket)
            except FileNotFoundError:
                pass


async def reload_providers(server: AgentServer, settings: Settings, env_at_start: dict[str, str]) -> list[str]:
    """SIGHUP: re-read the provider environment (``ATOMIC_ENV_FILE``, e.g. the systemd
    unit's EnvironmentFile) and rebuild the remote providers whose variables changed.
    The local model is never reloaded this way (it holds no key). Returns the names of
    the variables that changed (never their values)."""
    from ..reload import provider_env_changes, read_env_file
    from .providers import build_providers_report

    path = os.environ.get("ATOMIC_ENV_FILE")
    fresh_env = dict(os.environ)
    if path:
        try:
            fresh_env.update(await trio.to_thread.run_sync(read_env_file, path))
        except OSError as exc:
            log.error("reload: cannot read %s: %s", path, exc)
            return []
    changed = provider_env_changes(env_at_start, fresh_env)
    if not changed:
        log.info("reload: no provider variable changed")
        return []
    built, _ = await trio.to_thread.run_sync(
        lambda: build_providers_report(settings, fresh_env)
    )
    built.pop("local", None)
    names = await server.router.replace(built)
    server.facts_version += 1
    env_at_start.clear()
    env_at_start.update(fresh_env)
    log.info("reload: provider variables changed: %s; rebuilt providers: %s",
             ", ".join(changed), ", ".join(names))
    return changed


async def _leave_with_parent(parent: int, scope: trio.CancelScope) -> None:
    """A supervised agent stops when its server has gone (reparented: the ppid changed)."""
    while os.getppid() == parent:
        await trio.sleep(0.5)
    log.warning("the server (pid %d) is gone; the agent stops", parent)
    scope.cancel()


def main(settings: Settings) -> int:
    """Run the agent until SIGTERM or SIGINT; 0 after a clean signal shutdown, 1 on failure.

    SIGHUP rebuilds the remote providers from the current provider environment.
    """

    async def run() -> int:
        from ..reload import read_env_file

        env_at_start = dict(os.environ)
        path = os.environ.get("ATOMIC_ENV_FILE")
        if path and os.path.exists(path):
            env_at_start.update(read_env_file(path))
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_agent, settings)
                gc.freeze()  # startup's objects stay out of every collection (see server.serve)
                parent = os.environ.get("ATOMIC_AGENT_PARENT_PID")
                if parent and parent.isdigit():
                    nursery.start_soon(_leave_with_parent, int(parent), nursery.cancel_scope)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await reload_providers(server, settings, env_at_start)
                        continue
                    log.info("agent stopping on %s", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()
        return 0

    problems = listen_problems(settings)
    if problems:
        raise ConfigError("\n".join(problems))  # exit 2, like every configuration error
    try:
        return trio.run(run)
    except AtomicError as exc:
        log.error("agent failed: %s", exc.message)
        print(f"atomic agent: {exc.message}", file=sys.stderr, flush=True)
        return 1


__all__ = ["AgentServer", "AgentStatistics", "listen_problems", "main", "open_listeners", "serve_agent"]
