"""Why a workflow run failed, in one sentence for the user and in detail for the log and audit.

A ``Failure`` has a ``kind`` (a stable name for metrics and the audit record), a ``reason`` the
user reads ("the model server had an internal error (HTTP 500)"), ``advice`` ("try again later")
and a ``detail`` for operators (the exception's type and text, never shown to the user). Replies
never carry a repr, a Python type or a library's advice. A run that failed after a tool acted
tells what was done first, from the run's own record of its tool calls.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from strands.types.exceptions import (
    ContextWindowOverflowException,
    EventLoopException,
    MaxTokensReachedException,
)

from common.errors import WorkflowError
from llm_provider.retries import causes, is_throttled, status_code

DETAIL_CHARS = 300


@dataclass(frozen=True)
class Failure:
    """Why a run failed: its kind, what the user is told, what operators see."""

    kind: str
    reason: str
    advice: str
    detail: str

    def reply(self, tool_calls: Iterable[Mapping[str, Any]] = ()) -> str:
        """Return the one reply the user gets, saying first what the run's tools already did."""
        done = [str(call["message"]).strip() for call in tool_calls if call.get("success")]
        if not done:
            return f"Sorry, {self.reason}" + (f"; {self.advice}." if self.advice else ".")
        acts = " ".join(text if text.endswith(".") else text + "." for text in done)
        return f"{acts} Then {self.reason}, so I stopped there; what is listed here is done."


class EmptyAnswerError(Exception):
    """The model ended its turn without any text."""


def stopped() -> Failure:
    """Return the failure of a run cancelled because the daemon is stopping."""
    return Failure(
        "stopped",
        "intentd stopped before it could finish this request",
        "ask again once it is back",
        "cancelled because intentd is stopping",
    )


def describe_failure(err: BaseException, *, timeout: float, deadline_hit: bool) -> Failure:
    """Return the failure ``err`` stands for; ``deadline_hit`` when llm.timeout cut the run."""
    detail = _detail(err)
    if deadline_hit:
        detail = f"the run took longer than llm.timeout ({timeout:g} s)"
    chain = list(causes(err))
    if deadline_hit or any(isinstance(e, (TimeoutError, httpx.TimeoutException)) for e in chain):
        return Failure(
            "timeout",
            f"the model did not answer within llm.timeout ({timeout:g} s)",
            "try again, or ask an operator to raise llm.timeout",
            detail,
        )
    if is_throttled(err):
        return Failure(
            "throttled",
            "the model provider is rate limiting requests (HTTP 429)",
            "try again in a minute",
            detail,
        )
    if any(isinstance(e, MaxTokensReachedException) for e in chain):
        return Failure(
            "truncated",
            "the model's answer was cut off at its token limit",
            "try a shorter request, or ask an operator to raise llm.params.max_tokens",
            detail,
        )
    if any(isinstance(e, EmptyAnswerError) for e in chain):
        return Failure(
            "empty_answer", "the model gave an empty answer", "try rephrasing the request", detail
        )
    if any(isinstance(e, ContextWindowOverflowException) for e in chain):
        return Failure(
            "too_long",
            "the request is too long for the model's context window",
            "try a shorter request",
            detail,
        )
    code = next((c for c in map(status_code, chain) if c is not None), None)
    if code in (401, 403):
        return Failure(
            "refused_key",
            f"the model provider refused intentd's credentials (HTTP {code})",
            "ask an operator to check llm.api_key",
            detail,
        )
    if code is not None and code >= 500:
        return Failure(
            "server_error",
            f"the model server had an internal error (HTTP {code})",
            "try again later",
            detail,
        )
    if code is not None and code >= 400:
        return Failure(
            "rejected",
            f"the model server rejected the request (HTTP {code})",
            "an operator can find why in the log",
            detail,
        )
    if any(isinstance(e, (httpx.TransportError, ConnectionError)) for e in chain):
        return Failure(
            "unreachable",
            "the model server cannot be reached",
            "ask an operator to check that it runs at llm.base_url",
            detail,
        )
    if any(isinstance(e, WorkflowError) for e in chain):
        message = str(next(e for e in chain if isinstance(e, WorkflowError)))
        return Failure("workflow_error", message, "", detail)
    if any(isinstance(e, json.JSONDecodeError) for e in chain):
        return Failure("bad_answer", "the model's answer could not be read", "try again", detail)
    return Failure(
        "failed",
        "the workflow failed unexpectedly",
        "an operator can find why in the log",
        detail,
    )


def _detail(err: BaseException) -> str:
    """Return the first exception under strands' wrapper as 'Type: text', on one line, bounded."""
    inner = next((e for e in causes(err) if not isinstance(e, EventLoopException)), err)
    text = " ".join(str(inner).split())
    return (f"{type(inner).__name__}: {text}" if text else type(inner).__name__)[:DETAIL_CHARS]
