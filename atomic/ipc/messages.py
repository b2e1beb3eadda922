"""The IPC messages: builders for each ``type``, and errors to and from the wire.

Every message is a JSON object with a ``type``. Requests (``ping``, ``generate``,
``cancel``) carry an integer ``id``; replies echo it. A ``hello`` carries ``token`` when the
agent asks for one (``ATOMIC_IPC_TOKEN``); an agent that asks refuses any other first frame
with an ``error`` of code ``unauthorized`` and closes. A ``generate`` may carry ``trace``
(``{"traceparent": ...}``): the agent's span joins that trace. Client to agent: ``hello``, ``ping``,
``generate``, ``cancel``. Agent to client: ``hello``, ``pong``, ``token``, ``done``,
``error``. A ``generate`` ends with exactly one terminal frame, ``done`` or ``error``
(after a ``cancel``: an ``error`` with code ``cancelled``, unless ``done`` was already sent).
"""

from __future__ import annotations

from typing import Any

from .. import errors

PROTOCOL_VERSION = 1

HELLO = "hello"
PING = "ping"
PONG = "pong"
GENERATE = "generate"
CANCEL = "cancel"
TOKEN = "token"
DONE = "done"
ERROR = "error"

TERMINAL = frozenset({DONE, ERROR})

CANCELLED_CODE = "cancelled"
UNAUTHORIZED_CODE = "unauthorized"


def hello(token: str | None = None) -> dict[str, Any]:
    """The client's first frame; ``token`` is ``ATOMIC_IPC_TOKEN`` when the agent asks for one."""
    msg: dict[str, Any] = {"type": HELLO, "protocol": PROTOCOL_VERSION}
    if token is not None:
        msg["token"] = token
    return msg


def ping(id: int) -> dict[str, Any]:
    return {"type": PING, "id": id}


def generate(id: int, request: dict[str, Any], trace: dict[str, str] | None = None) -> dict[str, Any]:
    """``trace`` carries the W3C trace context (``traceparent``) of the span it belongs to."""
    msg = {"type": GENERATE, "id": id, "request": request}
    if trace:
        msg["trace"] = trace
    return msg


def cancel(id: int) -> dict[str, Any]:
    return {"type": CANCEL, "id": id}


def token(id: int, text: str) -> dict[str, Any]:
    return {"type": TOKEN, "id": id, "text": text}


def error(id: int | None, exc: BaseException) -> dict[str, Any]:
    return {"type": ERROR, "id": id, "error": error_to_wire(exc)}


def request_id(msg: dict[str, Any]) -> int:
    """The message's integer ``id``; RemoteProtocolError when it has none."""
    rid = msg.get("id")
    if type(rid) is not int:
        raise errors.RemoteProtocolError(f"{msg.get('type')!r} message without an integer id")
    return rid


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """``{"code", "message", "retryable"}`` (plus ``retry_after`` when the error has one)."""
    if isinstance(exc, errors.AtomicError):
        out: dict[str, Any] = {
            "code": exc.code,
            "message": exc.message,
            "retryable": bool(getattr(exc, "retryable", False)),
        }
        retry_after = exc.details.get("retry_after")
        if isinstance(retry_after, (int, float)):
            out["retry_after"] = float(retry_after)
        return out
    return {"code": "provider_error", "message": f"{type(exc).__name__}: {exc}", "retryable": False}


_BY_CODE: dict[str, type[errors.AtomicError]] = {
    cls.code: cls
    for cls in (
        errors.AgentError,
        errors.AgentUnavailable,
        errors.ProviderError,
        errors.ProviderUnavailable,
        errors.ProviderRateLimited,
        errors.ProviderServerError,
        errors.ProviderTimeout,
        errors.ProviderRequestError,
        errors.UnknownProvider,
    )
}


def error_from_wire(payload: Any) -> errors.AtomicError:
    """Rebuild the agent's error: the class for its code (else ProviderError), same code
    and ``retryable`` flag."""
    if not isinstance(payload, dict):
        return errors.RemoteProtocolError("error frame without an error object")
    code = str(payload.get("code") or "provider_error")
    message = str(payload.get("message") or code)
    details: dict[str, Any] = {}
    if isinstance(payload.get("retry_after"), (int, float)):
        details["retry_after"] = float(payload["retry_after"])
    cls = _BY_CODE.get(code, errors.ProviderError)
    exc = cls(message, code=code, **details)
    exc.retryable = bool(payload.get("retryable", False))  # type: ignore[attr-defined]
    return exc
