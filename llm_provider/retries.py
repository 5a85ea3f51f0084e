"""Retrying throttled model calls: one ``ThrottleRetry`` per Agent, waiting what the server asks.

Rules kept here:
- A strategy holds the attempt count of one Agent, so concurrent runs never use up each other's
  retries (strands keeps the count on the strategy object).
- A call refused as throttled (strands' ModelThrottledException, or HTTP 429 anywhere in the
  exception's chain) is retried up to ``attempts`` times in a row; a successful call starts over.
- The wait is the server's ``Retry-After`` (seconds or an HTTP date; ``retry-after-ms`` first)
  when it sent one, else ``delay`` doubling. A wait longer than ``budget`` (``llm.timeout``) is not
  waited for: the call fails as throttled at once instead of running into the timeout.
"""

import email.utils
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import structlog
from strands import ModelRetryStrategy
from strands.hooks import AfterModelCallEvent, HookRegistry
from strands.types.exceptions import ModelThrottledException

log = structlog.get_logger("intentd.workflows")


class ThrottleRetry(ModelRetryStrategy):
    """Retry one Agent's throttled model calls, honouring ``Retry-After``."""

    def __init__(
        self,
        *,
        attempts: int,
        delay: float,
        budget: float,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(max_attempts=attempts)
        self.attempts = attempts
        self.delay = delay
        self.budget = budget
        self.waits: list[float] = []  # what this Agent waited before each retry
        self._sleep = sleep
        self._clock = clock
        self._failed = 0

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Decide on a retry after every model call."""
        registry.add_callback(AfterModelCallEvent, self._after_model_call)

    async def _after_model_call(self, event: AfterModelCallEvent) -> None:
        if event.retry:
            return
        if event.exception is None or not is_throttled(event.exception):
            self._failed = 0
            return
        self._failed += 1
        if self._failed >= self.attempts:
            return
        asked = retry_after(event.exception, self._clock())
        wait = asked if asked is not None else self.delay * 2 ** (self._failed - 1)
        if wait > self.budget:
            log.warning("model_throttled_wait_too_long", retry_after_s=wait, budget_s=self.budget)
            return
        log.info("model_throttled_retrying", attempt=self._failed, wait_s=wait)
        self.waits.append(wait)
        await self._sleep(wait)
        event.retry = True


def is_throttled(err: BaseException) -> bool:
    """Return whether ``err`` (or an exception it wraps) says the provider is rate limiting."""
    return any(isinstance(e, ModelThrottledException) or status_code(e) == 429 for e in causes(err))


def retry_after(err: BaseException, now: float) -> float | None:
    """Return the seconds the server asked to wait in ``err``'s response headers, or None."""
    for cause in causes(err):
        headers = getattr(getattr(cause, "response", None), "headers", None)
        if headers is None or not hasattr(headers, "get"):
            continue
        millis = _number(headers.get("retry-after-ms"))
        if millis is not None:
            return millis / 1000
        value = headers.get("retry-after")
        if value is None:
            continue
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError):
                continue
        return max(0.0, seconds)
    return None


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """Yield ``err`` and every exception it wraps (strands' wrapper, ``__cause__``, context)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        context = None if err.__suppress_context__ else err.__context__
        err = getattr(err, "original_exception", None) or err.__cause__ or context


def status_code(err: BaseException) -> int | None:
    """Return the HTTP status an SDK exception carries (openai, anthropic, ollama, httpx, boto)."""
    code = getattr(err, "status_code", None)
    response = getattr(err, "response", None)
    if code is None and isinstance(response, dict):  # botocore ClientError
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    elif code is None:
        code = getattr(response, "status_code", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None
