"""The command line's side of the HTTP API: find the daemon from the config and ask it.

Runs in the ``intentd`` command's own short-lived process (one ``asyncio.run``), not the daemon.
"""

import ipaddress
import json
from typing import Any, TextIO

import aiohttp

from common.errors import DaemonUnreachableError, IntentdError
from common.events import check_event_type, check_outside_event
from supervisor.config import HTTPConfig

TIMEOUT = aiohttp.ClientTimeout(total=10)
STATUS_LINES = (  # (field in GET /status, label printed by `intentd status`)
    ("uptime_s", "uptime (s)"),
    ("ready", "ready"),
    ("not_ready", "not ready"),
    ("roles", "roles"),
    ("pending_timers", "pending timers"),
    ("outbox_depth", "outbox depth"),
    ("dead_letters", "dead letters"),
    ("journal_backlog", "journal backlog"),
    ("journal_oldest_age_s", "oldest event age (s)"),
    ("dead_events", "dead events"),
    ("loop_lag_ms", "loop lag (ms)"),
    ("schedules", "schedules"),
    ("instances", "instances"),
    ("last_heartbeat", "last heartbeat"),
    ("bus_queue_depth", "bus queue depth"),
    ("events_published", "events published"),
    ("active_workflows", "active workflows"),
)


def base_url(http: HTTPConfig) -> str:
    """Return the URL the daemon configured by ``http`` listens on."""
    if http.port == 0:
        raise DaemonUnreachableError(
            "http.port is 0 (a random port), so the command line cannot find the daemon; "
            "set a fixed http.port"
        )
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(http.host, http.host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{http.port}"


async def call(http: HTTPConfig, method: str, path: str, body: str | None = None) -> dict[str, Any]:
    """Send one request to the daemon and return its JSON answer; raise if it is an error."""
    url = base_url(http) + path
    headers = {"Authorization": f"Bearer {http.token}"} if http.token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.request(method, url, data=body, headers=headers) as response:
                answer = await response.json(content_type=None)
    except (aiohttp.ClientConnectionError, TimeoutError) as err:
        raise DaemonUnreachableError(
            f"the daemon is not running at {base_url(http)} ({err or type(err).__name__}); "
            "start it with 'intentd run' or check http.host and http.port"
        ) from err
    except (aiohttp.ContentTypeError, json.JSONDecodeError) as err:
        raise DaemonUnreachableError(
            f"{url} did not answer with JSON, so it is not an intentd daemon; check http.port"
        ) from err
    if response.status >= 400:
        raise IntentdError(f"the daemon refused {method} {path}: {answer.get('error', answer)}")
    return answer


async def show_status(http: HTTPConfig, out: TextIO) -> None:
    """Print the daemon's status, one field per line."""
    status = await call(http, "GET", "/status")
    width = max(len(label) for _, label in STATUS_LINES)
    for field, label in STATUS_LINES:
        out.write(f"{label:<{width}}  {_show(status.get(field))}\n")


async def emit(http: HTTPConfig, event_type: str, data: str, out: TextIO) -> None:
    """Publish ``event_type`` with the JSON object ``data`` through the daemon."""
    check_outside_event(check_event_type(event_type, "EVENT_TYPE"))
    answer = await call(http, "POST", f"/events/{event_type}", data)
    out.write(f"accepted {answer['event_type']} as {answer['event_id']}\n")


def _show(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return ", ".join(map(_show_item, value)) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


def _show_item(item: Any) -> str:
    if isinstance(item, dict):
        return " ".join(f"{key}={value}" for key, value in item.items())
    return str(item)
