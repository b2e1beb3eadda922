"""One error tree for Atomic.

Every error Atomic raises on purpose is an :class:`AtomicError`. Each class carries the
snake_case ``code`` and HTTP ``status`` of the contract's error body, so the server maps
any of them to ``{"error": {"code", "message"}}`` in one place. Foreign exceptions
(``trio.BrokenResourceError``, ``docker.errors.*``, ``sqlite3.*``, vendor SDK errors) are
translated at the boundary that meets them, and nowhere else.

Following trio: *Closed* means we closed it, *Broken* means the peer did.
"""

from __future__ import annotations

from typing import Any

import trio


class AtomicError(Exception):
    """Root of every error Atomic raises on purpose."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str = "", *, code: str | None = None, **details: Any) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# --- configuration -------------------------------------------------------------------


class ConfigError(AtomicError):
    """A setting has a value Atomic cannot use."""

    code = "config_error"


# --- timeouts ------------------------------------------------------------------------


class AtomicTimeout(AtomicError):
    """Something took longer than its caller allowed."""

    code = "timeout"
    status = 504


class PoolTimeout(AtomicTimeout):
    """No agent connection became free in time."""

    code = "agent_busy"
    status = 503


# --- connections ---------------------------------------------------------------------


class ConnectionError_(AtomicError):
    """A connection to a peer cannot be used."""

    code = "connection_error"
    status = 502


class ConnectionBroken(ConnectionError_):
    """The peer closed or reset the connection."""

    code = "connection_lost"


class ConnectionClosed(ConnectionError_):
    """We closed the connection ourselves and then tried to use it."""

    code = "connection_closed"


class ConnectFailed(ConnectionError_):
    """A connection could not be opened."""

    code = "connect_failed"


class AgentRefused(ConnectFailed):
    """The agent refused the connection: a missing or wrong ``ATOMIC_IPC_TOKEN``, or TLS
    on one side only."""

    code = "agent_refused"


# --- protocol ------------------------------------------------------------------------


class ProtocolError(AtomicError):
    """A peer broke the IPC framing or message rules."""

    code = "protocol_error"
    status = 502


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""


# --- agent and providers -------------------------------------------------------------


class AgentError(AtomicError):
    """The agent could not produce an answer."""

    code = "agent_error"
    status = 502


class AgentUnavailable(AgentError):
    """The agent process is not running or not answering."""

    code = "agent_unavailable"
    status = 503


class ProviderError(AgentError):
    """A model provider failed. ``retryable`` says whether trying again may help."""

    code = "provider_error"
    retryable = False


class ProviderUnavailable(ProviderError):
    """The provider is not configured or cannot be reached."""

    code = "provider_unavailable"
    retryable = True


class ProviderRateLimited(ProviderError):
    """The provider asked us to slow down."""

    code = "rate_limited"
    retryable = True


class ProviderServerError(ProviderError):
    """The provider answered with a server error (5xx)."""

    code = "provider_server_error"
    retryable = True


class ProviderTimeout(ProviderError, AtomicTimeout):
    """The provider did not answer in time."""

    code = "provider_timeout"
    retryable = True


class ProviderRequestError(ProviderError):
    """The provider refused the request itself (4xx other than rate limits)."""

    code = "provider_request_error"


class UnknownProvider(ProviderError):
    """No provider has that name."""

    code = "unknown_provider"
    status = 422


# --- sandbox -------------------------------------------------------------------------


class SandboxError(AtomicError):
    """The sandbox could not run the program (not: the program failed)."""

    code = "sandbox_error"
    status = 500


class SandboxUnavailable(SandboxError):
    """The Docker engine or the sandbox image is not available."""

    code = "sandbox_unavailable"
    status = 503


# --- store ---------------------------------------------------------------------------


class StoreError(AtomicError):
    """The jobs database could not be read or written."""

    code = "store_error"
    status = 500


class ArtifactError(AtomicError):
    """An artifact could not be exported."""

    code = "export_failed"
    status = 500


# --- jobs, queue and API -------------------------------------------------------------


class ValidationError(AtomicError):
    """A request field has a value Atomic cannot accept; the message names the field."""

    code = "validation_error"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class LanguageUnavailable(ValidationError):
    """A known language whose sandbox image is not built."""

    code = "language_unavailable"

    def __init__(self, language: str, image: str | None = None, field: str = "language") -> None:
        super().__init__(
            field,
            f"{language} needs its sandbox image{f' {image}' if image else ''}, which is not built; "
            f"run `atomic sandbox build-image --language {language}`",
        )
        self.language = language
        self.image = image


class InvalidJSON(AtomicError):
    """The request body is not valid JSON."""

    code = "invalid_json"
    status = 400


class PayloadTooLarge(AtomicError):
    """The request body is larger than the server accepts."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(AtomicError):
    """The request body is not application/json."""

    code = "unsupported_media_type"
    status = 415


class Unauthorized(AtomicError):
    """A valid API key is required."""

    code = "unauthorized"
    status = 401


class NotFound(AtomicError):
    """No such route."""

    code = "not_found"
    status = 404


class MethodNotAllowed(AtomicError):
    """That method is not allowed on this route; ``allow`` lists the ones that are."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, message: str, *, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow


class UpgradeRequired(AtomicError):
    """A WebSocket route was asked for without the WebSocket upgrade."""

    code = "upgrade_required"
    status = 426


class JobNotFound(AtomicError):
    """No job has that id."""

    code = "job_not_found"
    status = 404


class ArtifactNotFound(AtomicError):
    """The job has no artifact in that format (yet)."""

    code = "artifact_not_found"
    status = 404


class JobFinished(AtomicError):
    """The job has already ended."""

    code = "job_finished"
    status = 409


class QueueFull(AtomicError):
    """The queue is at capacity; ``retry_after`` is a hint in seconds."""

    code = "queue_full"
    status = 429

    def __init__(self, message: str = "the job queue is full", *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(AtomicError):
    """The client made more requests than ``ATOMIC_RATE_LIMIT`` allows; ``retry_after``
    is when the next one fits, in seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str = "too many requests", *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(AtomicError):
    """The server is shutting down and takes no new work."""

    code = "shutting_down"
    status = 503


# --- pipeline ------------------------------------------------------------------------


class JobFailed(AtomicError):
    """A pipeline stage failed; ``stage`` names it."""

    code = "job_failed"

    def __init__(self, message: str, *, code: str, stage: str) -> None:
        super().__init__(message, code=code)
        self.stage = stage


# --- cancellation --------------------------------------------------------------------


def only_cancelled(exc: BaseException) -> bool:
    """True when ``exc`` is ``trio.Cancelled``, alone or as the whole of an exception
    group: the scope around it was cancelled, and nothing else went wrong."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(trio.Cancelled)
        return rest is None
    return False
