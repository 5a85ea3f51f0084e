"""A running daemon with its HTTP API on a free 127.0.0.1 port, and a client session for it."""

import contextlib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from supervisor.config import Config, HTTPConfig, RolesConfig
from supervisor.supervisor import Supervisor

TOKEN = "test-token-5f1c"

ECHO_ROLE = '''
"""Reacts to PING, BOOM and BAD_INTENT; asks for a log notification and an audit record."""
from common.intents import AuditIntent, NotificationIntent

ROLE_CONFIG = {
    "name": "echo", "version": "1.0.0", "description": "Echo test role", "llm_type": "WEAK"
}


def handle_ping(event_data, context):
    return [
        NotificationIntent(message=f"ping {event_data.get('n')}", channel="log"),
        AuditIntent(action="ping", details=dict(event_data)),
    ]


def handle_boom(event_data, context):
    raise RuntimeError("boom")


def handle_bad_intent(event_data, context):
    return [NotificationIntent(message="", channel="log")]


def register_role():
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {
            "PING": handle_ping,
            "BOOM": handle_boom,
            "BAD_INTENT": handle_bad_intent,
        },
        "tools": [],
        "intents": {},
    }
'''


@dataclass
class Daemon:
    """A running supervisor plus an HTTP session pointed at it."""

    supervisor: Supervisor
    session: aiohttp.ClientSession
    base: str

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` on this daemon."""
        return self.base + path


def write_role(roles_dir: Path, name: str, source: str) -> Path:
    """Write a role file ``<roles_dir>/<name>.py``."""
    roles_dir.mkdir(parents=True, exist_ok=True)
    path = roles_dir / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def make_config(tmp_path: Path, token: str | None = TOKEN, **http: Any) -> Config:
    """Return a config with the echo role, the HTTP API on a free loopback port and ``token``."""
    roles = tmp_path / "roles"
    if not roles.exists():
        write_role(roles, "echo", ECHO_ROLE)
    return Config(
        roles=RolesConfig(directory=roles),
        http=HTTPConfig(port=0, token=token, **http),
        base_dir=tmp_path,
    )


@contextlib.asynccontextmanager
async def running_daemon(
    config: Config, *, auth: bool = True, **supervisor: Any
) -> AsyncIterator[Daemon]:
    """Run a Supervisor for ``config``; yield it with a session that sends the token if ``auth``."""
    headers = {"Authorization": f"Bearer {config.http.token}"} if auth and config.http.token else {}
    async with Supervisor(config=config, **supervisor).running() as sup:
        async with aiohttp.ClientSession(headers=headers) as session:
            yield Daemon(sup, session, f"http://127.0.0.1:{sup.http.port}")
