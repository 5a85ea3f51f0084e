"""Where the CLI's commands find their config file and the store it names (a leaf module)."""

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from supervisor.config import Config, load_config
from supervisor.logs import configure_logging
from supervisor.store.backends import StoreParts, open_parts, sqlite_parts
from supervisor.store.sqlite import Store

DEFAULT_CONFIG = "config.yaml"
T = TypeVar("T")


def config_path(path: str | None) -> str | None:
    """Return ``path``, else ./config.yaml when it exists, else None (the embedded defaults)."""
    if path is not None:
        return path
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None


def load_cli_config(path: str | None) -> Config:
    """Load the config a command's ``--config`` names, or the default one."""
    return load_config(config_path(path))


def open_existing_store(path: str | None) -> Store | None:
    """Open the SQLite store the config names, or return None when it does not exist yet."""
    config = load_cli_config(path)
    location = config.resolve(config.storage.path)
    if not Path(location).exists():
        return None
    return Store(location)


def on_store(path: str | None, work: Callable[[StoreParts], Awaitable[T]], absent: T) -> T:
    """Run ``work`` on the store the config names (SQLite at storage.path or PostgreSQL at
    storage.url) and return its result; return ``absent`` when the SQLite file does not exist."""
    config = load_cli_config(path)

    async def run() -> T:
        if config.storage.url is None:
            store = open_existing_store(path)
            if store is None:
                return absent
            parts = sqlite_parts(store)
        else:
            configure_logging("WARNING", stream=sys.stderr)  # stdout carries the answer
            instance = f"cli:{socket.gethostname()}:{os.getpid()}"
            parts = await open_parts(config.storage, config.resolve, instance)
        try:
            return await work(parts)
        finally:
            await parts.close()

    return asyncio.run(run())
