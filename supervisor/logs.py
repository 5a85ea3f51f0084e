"""One structlog configuration for our logs and third-party stdlib logs.

Console rendering on a TTY, JSON lines otherwise. Tracebacks never carry frame locals; values
under secret key names (exact names such as ``bot_token`` or ``api_key``) and token-shaped strings
(Slack, OpenAI/Anthropic, AWS access keys, bearer tokens) are redacted, so tokens do not reach the
log while usage counts such as ``inputTokens`` stay visible.

Values that may carry user text are cut (``cut_user_text``): under ``USER_TEXT_KEYS`` a string
keeps its first ``USER_TEXT_PREFIX`` characters and a mark, and in an ``error`` (and a JSON
traceback's exception text) every quoted value is masked, since errors quote the input they
refuse. The ``log`` channel's ``notification`` event is the exception: writing notifications to
the log is that channel's job.
"""

import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor

# Exact key names, not substrings: usage counts such as ``inputTokens`` must stay visible.
_SECRET_KEYS = frozenset({
    "token", "bot_token", "app_token", "access_token", "refresh_token", "id_token",
    "session_token", "aws_session_token", "secret", "client_secret", "signing_secret",
    "aws_secret_access_key", "password", "passwd", "api_key", "apikey", "x-api-key",
    "authorization", "proxy-authorization", "cookie", "set-cookie",
})  # fmt: skip
_SECRET_VALUE = re.compile(
    r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{16})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{8,}"
    r"|(?<=ticket=)[^&\s'\"]+"  # a Socket Mode URL's ticket grants a connection
)


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Hide values under secret key names and token-shaped strings anywhere in the event."""
    for key, value in event_dict.items():
        if key.lower() in _SECRET_KEYS and value is not None:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            event_dict[key] = _SECRET_VALUE.sub("[redacted]", value)
    return event_dict


USER_TEXT_KEYS = frozenset(
    {"label", "text", "note", "message", "request", "original_request", "arguments", "details"}
)
USER_TEXT_PREFIX = 8
LOG_CHANNEL_EVENT = "notification"
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


def cut_user_text(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Cut values that may carry user text to a marked prefix; mask quoted values in errors."""
    if event_dict.get("event") == LOG_CHANNEL_EVENT:
        return event_dict
    for key, value in event_dict.items():
        if key in USER_TEXT_KEYS and value is not None:
            event_dict[key] = _cut(value)
        elif key == "error" and isinstance(value, str):
            event_dict[key] = _QUOTED.sub("'…'", value)
        elif key == "exception" and isinstance(value, list):  # dict tracebacks (JSON)
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("exc_value"), str):
                    item["exc_value"] = _QUOTED.sub("'…'", item["exc_value"])
    return event_dict


def _cut(value: Any) -> Any:
    if not isinstance(value, str):
        return f"[{type(value).__name__} not logged]"
    if len(value) <= USER_TEXT_PREFIX:
        return value
    return f"{value[:USER_TEXT_PREFIX]}…[{len(value)} chars]"


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one renderer on ``stream`` (stderr)."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        )
    else:
        # plain_traceback: rich's pretty tracebacks would print frame locals (tokens) if installed
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    shared.append(cut_user_text)  # last: after the JSON traceback is turned into data
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # A line under the level is dropped by the call itself, before any processor runs.
        # Loggers are not cached: a cached one keeps the level and processors of its first use,
        # so a reload to a lower level and structlog.testing.capture_logs would not reach it.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
