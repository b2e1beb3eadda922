"""Amazon Bedrock's Converse API, streamed (``converse_stream``), through boto3.

boto3 blocks, so its calls run in worker threads: one for the request, then one hop per
event pulled from the ``EventStream``; the events are handled on the Trio side. The events
are ``messageStart``, ``contentBlockDelta`` (text), ``messageStop`` (stop reason) and
``metadata`` (``usage.inputTokens``/``outputTokens``); an exception event (e.g.
``throttlingException``) surfaces from botocore as ``EventStreamError``.

Cancellation: a thread cannot be cancelled, so we let go of it and close the stream from
the Trio side; the abandoned read ends with the closed connection. A request still waiting
for its response when cancelled closes its own stream once the response arrives.

Configuration comes from the environment mapping: ``AWS_REGION``/``AWS_DEFAULT_REGION``,
the standard credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_PROFILE``; otherwise boto3's own chain) and
``ATOMIC_BEDROCK_MODEL``. botocore's retries are off: the router retries.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import trio

from ...errors import ProviderError, ProviderServerError, ProviderTimeout, ProviderUnavailable
from . import _http
from .base import Event, Finish, ProviderRequest, TextDelta

log = logging.getLogger(__name__)

DEFAULT_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
_END = object()

# Exception shapes Converse names, as the HTTP status AWS documents for each.
_STATUS_BY_CODE = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
    "modelstreamerrorexception": 502,
    "modelerrorexception": 502,
    "modelnotreadyexception": 503,
    "modeltimeoutexception": 408,
    "validationexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
}
_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


class _PendingCall:
    """A ``converse_stream`` call a cancelled task may walk away from.

    If the caller gave up before taking the response, its stream is closed as soon as
    there is one (by the thread, or by ``abandon`` if the thread got there first): the
    request is not left streaming with nobody reading.
    """

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: Any = None

    def run(self) -> Any:
        response = self._fn()
        with self._lock:
            if self._abandoned:
                response["stream"].close()
                return None
            self._response = response
        return response

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response, self._response = self._response, None
        if response is not None:
            response["stream"].close()


def _quiet_botocore() -> None:
    """Keep botocore's DEBUG records from being emitted at all.

    They print the canonical request and the signed headers, session token included, and
    response bodies verbatim: secrets must never reach the logs, whatever the root level.
    """
    for name in ("botocore", "boto3"):
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


class BedrockProvider:
    """Models on Amazon Bedrock, through Converse streaming."""

    name = "bedrock"

    def __init__(
        self,
        *,
        region: str | None,
        model: str | None = None,
        credentials: Mapping[str, str] | None = None,
        profile: str | None = None,
        has_credentials: bool = True,
        settings: Any = None,
        session: Any = None,
        event_hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
        cleanup_timeout: float | None = None,
    ) -> None:
        self._region = region
        self._event_hooks = tuple(event_hooks)
        self._env_model = model
        self._credentials = dict(credentials or {})
        self._profile = profile
        self._has_credentials = has_credentials or session is not None
        self._settings = settings
        self._session = session
        self._cleanup_timeout = _http.cleanup_bound(settings, cleanup_timeout)
        self._client: Any = None
        self._client_lock = trio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._region) and self._has_credentials

    def default_model(self) -> str:
        return _http.resolve_model(
            ProviderRequest(messages=()), self._env_model, self._settings, self.name, DEFAULT_MODEL
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.default_model(),
            "configured": self.configured,
            "region": self._region,
        }

    def __repr__(self) -> str:
        return (
            f"<BedrockProvider region={self._region!r} model={self.default_model()!r} "
            f"configured={self.configured}>"
        )

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._credentials.get("aws_secret_access_key"), self._credentials.get("aws_session_token"))

    def _make_client(self) -> Any:
        """Blocking: loads botocore's service model. Runs in a worker thread."""
        import boto3
        from botocore.config import Config

        _quiet_botocore()
        session = self._session or boto3.session.Session(profile_name=self._profile, **self._credentials)
        client = session.client(
            "bedrock-runtime",
            region_name=self._region,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        # botocore event hooks (e.g. "before-send.bedrock-runtime.ConverseStream").
        for event_name, handler in self._event_hooks:
            client.meta.events.register(event_name, handler)
        return client

    async def _get_client(self) -> Any:
        if not self._region:
            raise _http.not_configured(self.name, ["AWS_REGION"])
        async with self._client_lock:
            if self._client is None:
                try:
                    self._client = await trio.to_thread.run_sync(self._make_client)
                except Exception as exc:
                    error = self._translate(exc)
                    if error is None:
                        raise
                    raise error from None
            return self._client

    def _params(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        system, chat = _http.split_system(request.messages)
        inference: dict[str, Any] = {"maxTokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            inference["stopSequences"] = list(request.stop)
        params: dict[str, Any] = {
            "modelId": model,
            "messages": [{"role": m.role, "content": [{"text": m.content}]} for m in chat],
            "inferenceConfig": inference,
        }
        if system is not None:
            params["system"] = [{"text": system}]
        return params

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Event]:
        client = await self._get_client()
        model = _http.resolve_model(request, self._env_model, self._settings, self.name, DEFAULT_MODEL)
        counter = _http.UsageCounter(request, model)
        reason: str | None = None
        log.debug("bedrock: converse_stream, model %s", model)
        call = _PendingCall(partial(client.converse_stream, **self._params(request, model)))
        try:
            response = await trio.to_thread.run_sync(call.run, abandon_on_cancel=True)
        except trio.Cancelled:
            call.abandon()
            raise
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        events = response["stream"]
        iterator = iter(events)
        try:
            while True:
                event: Any = await trio.to_thread.run_sync(next, iterator, _END, abandon_on_cancel=True)
                if event is _END:
                    break
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        counter.add_text(text)
                        yield TextDelta(text)
                elif "messageStop" in event:
                    reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    usage = event["metadata"].get("usage") or {}
                    if isinstance(usage.get("inputTokens"), int):
                        counter.prompt_tokens = usage["inputTokens"]
                    if isinstance(usage.get("outputTokens"), int):
                        counter.completion_tokens = usage["outputTokens"]
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        finally:
            # Closing the body is a non-blocking socket close; it also ends an abandoned read.
            events.close()
        yield Finish(
            usage=counter.usage(),
            model=counter.model,
            finish_reason=_http.finish_reason(reason) if reason else "incomplete",
            extra={"vendor_finish_reason": reason} if reason else {},
        )

    def _translate(self, exc: Exception) -> ProviderError | None:
        """A botocore exception as an Atomic ProviderError; None: not ours."""
        from botocore import exceptions as bex

        secrets = self._secrets()
        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {}) or {}
            code = str(err.get("Code") or type(exc).__name__)
            meta = exc.response.get("ResponseMetadata", {}) or {}
            status = meta.get("HTTPStatusCode") or _STATUS_BY_CODE.get(code.lower(), 500)
            if status == 200:  # an exception event inside a 200 stream
                status = _STATUS_BY_CODE.get(code.lower(), 500)
            message = f"{code}: {err.get('Message') or 'no message'}"
            return _http.error_for_status(
                self.name, int(status), message, headers=meta.get("HTTPHeaders"), kind=code, secrets=secrets
            )
        if isinstance(exc, (bex.ReadTimeoutError, bex.ConnectTimeoutError)):
            return ProviderTimeout(f"bedrock: timed out: {type(exc).__name__}", provider=self.name)
        if isinstance(
            exc,
            (
                bex.NoCredentialsError,
                bex.PartialCredentialsError,
                bex.CredentialRetrievalError,
                bex.NoRegionError,
                bex.ProfileNotFound,
                bex.EndpointConnectionError,
            ),
        ):
            return ProviderUnavailable(
                _http.redact(f"bedrock: unavailable: {type(exc).__name__}: {exc}", secrets),
                provider=self.name,
            )
        if isinstance(exc, bex.BotoCoreError):
            return ProviderServerError(
                _http.redact(f"bedrock: {type(exc).__name__}: {exc}", secrets), provider=self.name
            )
        return None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with trio.move_on_after(self._cleanup_timeout, shield=True):
                await trio.to_thread.run_sync(client.close)


def create(
    settings: Any,
    env: Mapping[str, str],
    *,
    session: Any = None,
    event_hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
) -> BedrockProvider:
    """The Bedrock provider as the environment configures it."""
    credentials = {
        arg: env[var]
        for var, arg in (
            ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
            ("AWS_SESSION_TOKEN", "aws_session_token"),
        )
        if env.get(var)
    }
    has_credentials = any(env.get(var) for var in _CREDENTIAL_VARS) or os.path.exists(
        os.path.expanduser(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
    )
    return BedrockProvider(
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        model=env.get("ATOMIC_BEDROCK_MODEL") or None,
        credentials=credentials,
        profile=env.get("AWS_PROFILE") or None,
        has_credentials=has_credentials,
        settings=settings,
        session=session,
        event_hooks=event_hooks,
    )
