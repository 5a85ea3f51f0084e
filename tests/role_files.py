"""Write role files for tests: a small echo role, and edits the registry is sure to notice."""

import itertools
import os
import time
from pathlib import Path

from supervisor.config import ChannelsConfig, Config, HTTPConfig, RolesConfig, StorageConfig

ECHO_ROLE = '''\
"""Echo: replies to PING events with the text of the ping."""

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "echo", "version": "VERSION", "description": "Echo.", "llm_type": "WEAK"}


def handle_ping(event_data, context):
    return [NotificationIntent(message="TAG " + event_data["text"], channel="console")]


def register_role():
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {"PING": handle_ping},
        "tools": [],
        "intents": {},
    }
'''

_stamps = itertools.count(time.time_ns(), 1_000_000_000)


def echo_role(tag: str = "v1", version: str = "1.0.0") -> str:
    """Return the source of the echo role, replying with ``tag``."""
    return ECHO_ROLE.replace("TAG", tag).replace("VERSION", version)


def write_role(folder: Path, name: str, text: str) -> Path:
    """Write ``folder/name.py`` and give it a modification time no earlier write had."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text)
    stamp = next(_stamps)
    os.utime(path, ns=(stamp, stamp))
    return path


def make_config(tmp_path: Path, **roles: object) -> Config:
    """Return a config with its roles folder and store under ``tmp_path``, HTTP on a free port."""
    return Config(
        roles=RolesConfig(directory=tmp_path / "roles", **roles),  # type: ignore[arg-type]
        storage=StorageConfig(path=tmp_path / "intentd.db"),
        channels=ChannelsConfig(admin="console:admin"),
        http=HTTPConfig(port=0),
    )
