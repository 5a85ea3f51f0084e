"""The HTTP server under the API: aiohttp's protocol, with its own answers and logs made ours.

Rules kept here:
- A request aiohttp's parser refuses (a bad header, Content-Length or framing, a line over 8190
  bytes, data after ``Connection: close``) is answered with JSON ``{"error": "<one sentence>"}``
  naming the kind of problem, never the offending bytes, and reported once through
  ``on_rejected`` with method and route ``"unparsed"``.
- aiohttp's ``aiohttp.server`` logger is never used: it would write raw header lines and
  tracebacks. An exception that escapes the application (the API's guard answers every error, so
  none should) is a JSON 500 and one ``http_server_error`` line naming only the exception's type.
- This subclasses aiohttp's ``RequestHandler`` (``handle_error``, ``log_exception``) and
  ``AppRunner._make_server``; tests/supervisor/ops/test_malformed_requests.py drives it over raw
  sockets, so an aiohttp upgrade that moves these hooks fails there.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("intentd.http")

UNPARSED = "unparsed"
OnRejected = Callable[[str, str, int, str | None], None]  # (method, route, status, remote)

_PROBLEMS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "a request line or header is longer than 8190 bytes"),
    (BadHttpMethod, "the request method is not an HTTP method token"),
    (InvalidURLError, "the request target is not a valid URL path"),
    (BadStatusLine, "the request line is not 'METHOD /path HTTP/1.1'"),
    (InvalidHeader, "a header name or value holds a character HTTP does not allow"),
    (PayloadEncodingError, "the body does not match its Content-Length or chunked framing"),
)
_FIX = "fix the client to send well-formed HTTP/1.1"


def describe_parse_error(exc: BaseException | None) -> str:
    """Return the one-sentence answer to a request the parser refused, quoting none of it."""
    problem = next(
        (text for kind, text in _PROBLEMS if isinstance(exc, kind)),
        "the request is not well-formed HTTP/1.1 (a bad or duplicate header, Content-Length, "
        "folded header line, missing Host, or data after 'Connection: close')",
    )
    return f"{problem}; {_FIX}"


class _Protocol(RequestHandler):
    """aiohttp's per-connection handler, answering and logging errors our way."""

    def __init__(self, manager: web.Server, on_rejected: OnRejected, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._on_rejected = on_rejected

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed")
        if isinstance(exc, HttpProcessingError):
            text = describe_parse_error(exc)
            self._on_rejected(UNPARSED, UNPARSED, status, request.remote)
        else:
            kind = type(exc).__name__ if exc is not None else "a time-out"
            text = f"the daemon failed to answer ({kind}); the daemon log has the details"
            log.error("http_server_error", status=status, error_type=type(exc).__name__)
            self._on_rejected(request.method, UNPARSED, status, request.remote)
        response = web.json_response({"error": text}, status=status)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        log.error(
            "http_server_error",
            error_type=type(exc).__name__ if isinstance(exc, BaseException) else None,
        )


class _Server(web.Server):
    """aiohttp's connection factory, building our ``_Protocol``."""

    def __init__(self, made: web.Server, on_rejected: OnRejected, **kwargs: Any) -> None:
        super().__init__(made.request_handler, request_factory=made.request_factory, **kwargs)
        self._protocol_options = kwargs
        self._rejected = on_rejected

    def __call__(self) -> RequestHandler:
        return _Protocol(
            self, self._rejected, loop=asyncio.get_running_loop(), **self._protocol_options
        )


class JsonErrorRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer protocol errors with JSON (see module rules)."""

    def __init__(
        self, app: web.Application, on_rejected: OnRejected, *, shutdown_timeout: float
    ) -> None:
        super().__init__(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
        )
        self._rejected = on_rejected

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts and freezes the application
        return _Server(made, self._rejected, access_log=None)
