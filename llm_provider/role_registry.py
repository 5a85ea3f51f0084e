"""The role registry: finds role files, imports each exactly once, and wires them in.

Rules kept here:
- A role is one file ``<roles_directory>/<name>.py`` (files starting with ``_`` are skipped),
  imported as module ``roles.<name>``; a file already imported from the same path is reused.
- ``register_role()`` returns ``config``, ``event_handlers``, ``tools`` and ``intents``.
- Event handlers are subscribed on the bus under the role's name; intent handlers are registered
  with the IntentProcessor by ``set_intent_processor``.
"""

import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog

from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus

log = structlog.get_logger("intentd.roles")


@dataclass
class LoadedRole:
    """A role that passed its checks and is wired in."""

    name: str
    path: Path
    module: ModuleType
    config: dict[str, Any]
    event_handlers: dict[str, Any]
    tools: list[Any]
    intents: dict[type, Any]
    digest: str
    mtime_ns: int
    extra: dict[str, Any] = field(default_factory=dict)


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_role_module(path: Path) -> ModuleType:
    """Import ``path`` as ``roles.<stem>``, reusing a module already imported from that file."""
    name = f"roles.{path.stem}"
    existing = sys.modules.get(name)
    if existing is not None and _same_file(getattr(existing, "__file__", None), path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if existing is not None:
            sys.modules[name] = existing
        else:
            del sys.modules[name]
        raise
    return module


def _same_file(module_file: str | None, path: Path) -> bool:
    if module_file is None:
        return False
    try:
        return Path(module_file).resolve() == path.resolve()
    except OSError:
        return False


class RoleRegistry:
    """Discover roles in a folder and wire them to the bus and the IntentProcessor."""

    def __init__(self, roles_directory: str | Path = "roles", message_bus: MessageBus | None = None):
        self.roles_directory = Path(roles_directory)
        self.message_bus = message_bus
        self.roles: dict[str, LoadedRole] = {}
        self.intent_processor: IntentProcessor | None = None

    def role_files(self) -> list[Path]:
        """Return the role files in the folder, sorted by name."""
        if not self.roles_directory.is_dir():
            return []
        return sorted(p for p in self.roles_directory.glob("*.py") if not p.name.startswith("_"))

    def discover_roles(self) -> dict[str, LoadedRole]:
        """Import and wire every role file; return the loaded roles by name."""
        for path in self.role_files():
            self._add(path)
        return self.roles

    def rescan(self) -> list[str]:
        """Load role files added since discovery; return their names (changed files stay as is)."""
        loaded = {role.path for role in self.roles.values()}
        return [self._add(path).name for path in self.role_files() if path not in loaded]

    def _add(self, path: Path) -> LoadedRole:
        role = self.load_role(path)
        self.roles[role.name] = role
        self._subscribe(role)
        if self.intent_processor is not None:
            self._register_intents(role, self.intent_processor)
        log.info("role_loaded", role=role.name, path=str(path))
        return role

    def load_role(self, path: Path) -> LoadedRole:
        """Import one role file and read its registration."""
        digest, mtime_ns = file_digest(path), path.stat().st_mtime_ns
        module = import_role_module(path)
        registration = module.register_role()
        config = registration["config"]
        return LoadedRole(
            name=config["name"],
            path=path,
            module=module,
            config=config,
            event_handlers=dict(registration.get("event_handlers", {})),
            tools=list(registration.get("tools", [])),
            intents=dict(registration.get("intents", {})),
            digest=digest,
            mtime_ns=mtime_ns,
        )

    def set_intent_processor(self, processor: IntentProcessor) -> None:
        """Register every loaded role's intent handlers with ``processor``."""
        self.intent_processor = processor
        for role in self.roles.values():
            self._register_intents(role, processor)

    def get_role(self, name: str) -> LoadedRole | None:
        """Return a loaded role by name."""
        return self.roles.get(name)

    def _subscribe(self, role: LoadedRole) -> None:
        if self.message_bus is None:
            return
        for event_type, handler in role.event_handlers.items():
            self.message_bus.subscribe(role.name, event_type, handler)

    @staticmethod
    def _register_intents(role: LoadedRole, processor: IntentProcessor) -> None:
        for intent_type, handler in role.intents.items():
            processor.register_role_intent_handler(intent_type, handler, role=role.name)
