"""The shared translation helpers, synchronously."""

from __future__ import annotations

import email.utils
import time

import pytest

from atomic import errors
from atomic.agent.providers import _http


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers, expected):
    assert _http.retry_after(headers) == expected


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _http.retry_after({"retry-after": when}) <= 31


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (429, None, errors.ProviderRateLimited),
        (500, None, errors.ProviderServerError),
        (503, None, errors.ProviderServerError),
        (529, "overloaded_error", errors.ProviderServerError),
        (400, None, errors.ProviderRequestError),
        (401, None, errors.ProviderRequestError),
        (408, None, errors.ProviderTimeout),
        (200, "overloaded_error", errors.ProviderServerError),
        (200, "rate_limit_error", errors.ProviderRateLimited),
        (200, "invalid_request_error", errors.ProviderRequestError),
    ],
)
def test_error_for_status(status, kind, expected):
    error = _http.error_for_status("x", status, "boom", kind=kind)
    assert type(error) is expected
    assert error.details["status"] == status


def test_error_message_is_redacted():
    error = _http.error_for_status("x", 401, "bad key sk-123456789", secrets=["sk-123456789"])
    assert "sk-123456789" not in error.message
    assert "***" in error.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("length", "length"),
        ("content_filter", "content_filter"),
    ],
)
def test_finish_reason(raw, expected):
    assert _http.finish_reason(raw) == expected
