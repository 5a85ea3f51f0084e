"""Throttle detection and Retry-After reading, on the SDKs' real exception types."""

import email.utils

import httpx
import openai
import pytest
from strands.types.exceptions import EventLoopException, ModelThrottledException

from llm_provider.retries import is_throttled, retry_after

NOW = 1_800_000_000.0


def rate_limited(**headers: str) -> BaseException:
    """Return strands' wrapper around the openai SDK's 429, as a run sees it."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx.Response(429, headers=headers, request=request)
    cause = openai.RateLimitError("rate limited", response=response, body=None)
    try:
        raise ModelThrottledException(str(cause)) from cause
    except ModelThrottledException as err:
        return EventLoopException(err)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_the_response_headers(headers, seconds) -> None:
    assert retry_after(rate_limited(**headers), NOW) == seconds


def test_a_429_status_anywhere_in_the_chain_is_throttling() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:9/api/chat")
    err = httpx.HTTPStatusError("429", request=request, response=httpx.Response(429))
    assert is_throttled(err) and is_throttled(rate_limited())


def test_a_server_error_is_not_throttling() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:9/api/chat")
    err = httpx.HTTPStatusError("500", request=request, response=httpx.Response(500))
    assert not is_throttled(err)
