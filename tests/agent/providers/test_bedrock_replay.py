"""Bedrock: AWS event-stream bytes replayed beneath real boto3 parsing and the real provider.

A botocore ``before-send`` hook answers the signed HTTP request with an ``AWSResponse``
whose raw body streams the binary ``application/vnd.amazon.eventstream`` encoding of the
recorded ConverseStream messages; botocore decodes it (CRCs checked) and parses the events.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
import trio
from botocore import eventstream
from botocore.awsrequest import AWSResponse
from provider_wire import (
    REQUEST,
    RawBody,
    chunked,
    collect,
    encode_event_file,
    encode_event_message,
    error_text,
    leaked,
    log_text,
)

from atomic import errors
from atomic.agent.providers import bedrock
from atomic.agent.providers.base import TextDelta, Usage

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTSECRETKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENxyz"
ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_SESSION_TOKEN": TOKEN,
}
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
STREAM_HEADERS = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "7f0c-test"}


class AWS:
    """The scripted far side of botocore's HTTP layer: records requests, answers with a body."""

    def __init__(self, body: RawBody, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers or STREAM_HEADERS
        self.requests: list = []

    def __call__(self, request, **_):
        self.requests.append(request)
        return AWSResponse(request.url, self.status, self.headers, self.body)

    def provider(self, tmp_settings, env=ENV):
        return bedrock.create(
            tmp_settings, env, event_hooks=[("before-send.bedrock-runtime.ConverseStream", self)]
        )


def test_encoder_round_trips_through_botocore_decoder():
    data = encode_event_message(
        {":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}'
    )
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    (message,) = list(buffer)
    assert message.headers == {":event-type": "messageStart", ":message-type": "event"}
    assert message.payload == b'{"role":"assistant"}'
    corrupt = data[:-1] + bytes([data[-1] ^ 1])
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(corrupt)
    with pytest.raises(eventstream.ChecksumMismatch):
        list(buffer)


async def test_stream_text_usage_and_request_shape(tmp_settings):
    aws = AWS(RawBody(chunked(encode_event_file("bedrock_converse_stream.jsonl"))))
    provider = aws.provider(tmp_settings, {**ENV, "ATOMIC_BEDROCK_MODEL": MODEL})

    text, finish, deltas = await collect(provider)

    assert text == "Hello from Bedrock"
    assert deltas == [TextDelta("Hello"), TextDelta(" from Bedrock")]
    assert finish.usage == Usage(prompt_tokens=17, completion_tokens=4, estimated=False)
    assert finish.finish_reason == "stop"
    assert finish.model == MODEL
    (request,) = aws.requests
    assert request.url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    )
    auth = request.headers["Authorization"].decode()
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in auth
    assert json.loads(request.body) == {
        "messages": [{"role": "user", "content": [{"text": "Print hello."}]}],
        "system": [{"text": "You write Python."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.0, "stopSequences": ["```\n"]},
    }
    assert aws.body.closed.is_set()
    await provider.aclose()


async def test_throttled_before_stream(tmp_settings):
    body = RawBody([b'{"message":"Too many requests, please wait before trying again."}'])
    aws = AWS(
        body,
        status=429,
        headers={
            "content-type": "application/json",
            "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        },
    )
    with pytest.raises(errors.ProviderRateLimited) as info:
        await collect(aws.provider(tmp_settings))
    assert info.value.details["vendor_error"] == "ThrottlingException"
    assert info.value.details["status"] == 429
    assert len(aws.requests) == 1, "botocore must not retry: the router does"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (500, "InternalServerException", errors.ProviderServerError),
        (503, "ServiceUnavailableException", errors.ProviderServerError),
        (400, "ValidationException", errors.ProviderRequestError),
        (403, "AccessDeniedException", errors.ProviderRequestError),
        (408, "ModelTimeoutException", errors.ProviderTimeout),
    ],
)
async def test_http_errors(tmp_settings, status, code, expected):
    body = RawBody([b'{"message":"it went wrong"}'])
    aws = AWS(body, status=status, headers={"content-type": "application/json", "x-amzn-ErrorType": code})
    with pytest.raises(expected) as info:
        await collect(aws.provider(tmp_settings))
    assert info.value.details["vendor_error"] == code


async def test_throttling_exception_mid_stream(tmp_settings):
    aws = AWS(RawBody(chunked(encode_event_file("bedrock_stream_throttled.jsonl"), 11)))
    seen = []
    with pytest.raises(errors.ProviderRateLimited, match="Too many tokens") as info:
        async for event in aws.provider(tmp_settings).stream(REQUEST):
            seen.append(event)
    assert seen == [TextDelta("Hel")]
    assert info.value.details["vendor_error"] == "throttlingException"
    assert aws.body.closed.is_set()


async def test_stream_without_metadata_is_estimated(tmp_settings):
    data = encode_event_file("bedrock_converse_stream.jsonl")
    messages = []
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    for message in buffer:
        if message.headers[":event-type"] != "metadata":
            messages.append(encode_event_message(message.headers, message.payload))
    aws = AWS(RawBody([b"".join(messages)]))
    text, finish, _ = await collect(aws.provider(tmp_settings))
    assert text == "Hello from Bedrock"
    assert finish.usage.estimated


async def test_not_configured_without_region(tmp_settings):
    provider = bedrock.create(tmp_settings, {k: v for k, v in ENV.items() if k != "AWS_REGION"})
    assert provider.describe()["configured"] is False
    with pytest.raises(errors.ProviderUnavailable, match="AWS_REGION"):
        await collect(provider)


async def test_cancel_mid_stream_closes_body(tmp_settings):
    # Real threads are involved, so real (short) time: the body blocks like a socket read.
    data = encode_event_file("bedrock_converse_stream.jsonl")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    first_two = [encode_event_message(m.headers, m.payload) for m in list(buffer)[:2]]
    aws = AWS(RawBody(first_two, hang=True))
    provider = aws.provider(tmp_settings)
    seen = []
    got_first = trio.Event()

    async def consume(scope: trio.CancelScope) -> None:
        with scope:
            async for event in provider.stream(REQUEST):
                seen.append(event)
                got_first.set()

    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, scope)
        await got_first.wait()
        await trio.sleep(0.2)  # the worker thread is now blocked reading the body
        start = time.monotonic()
        scope.cancel()
    assert scope.cancelled_caught
    assert seen == [TextDelta("Hello")]
    assert aws.body.closed.is_set()
    assert time.monotonic() - start < 1


async def test_secrets_never_leak(tmp_settings, caplog):
    caplog.set_level(logging.DEBUG)
    body = RawBody(
        [b'{"message":"The security token included in the request is invalid: ' + TOKEN.encode() + b'"}']
    )
    aws = AWS(
        body,
        status=403,
        headers={"content-type": "application/json", "x-amzn-ErrorType": "UnrecognizedClientException"},
    )
    provider = aws.provider(tmp_settings)
    with pytest.raises(errors.ProviderRequestError) as info:
        await collect(provider)
    for secret in (SECRET, TOKEN):
        assert not leaked(
            secret, error_text(info.value), repr(provider), str(provider.describe()), log_text(caplog)
        )
