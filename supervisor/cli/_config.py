"""Where the CLI's commands find their config file and the store it names (a leaf module)."""

from pathlib import Path

from supervisor.config import Config, load_config
from supervisor.store.sqlite import Store

DEFAULT_CONFIG = "config.yaml"


def config_path(path: str | None) -> str | None:
    """Return ``path``, else ./config.yaml when it exists, else None (the embedded defaults)."""
    if path is not None:
        return path
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None


def load_cli_config(path: str | None) -> Config:
    """Load the config a command's ``--config`` names, or the default one."""
    return load_config(config_path(path))


def open_existing_store(path: str | None) -> Store | None:
    """Open the store the config names, or return None when it does not exist yet."""
    config = load_cli_config(path)
    location = config.resolve(config.storage.path)
    if not Path(location).exists():
        return None
    return Store(location)
