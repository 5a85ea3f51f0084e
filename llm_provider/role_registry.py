"""The role registry: finds role files, checks them, wires them in, and keeps them current.

Rules kept here:
- A role is one file ``<roles_directory>/<name>.py`` (files starting with ``_`` are skipped),
  imported as module ``roles.<name>``; a file already imported from the same path is reused.
- Role names equal file names, so one folder cannot hold two roles of the same name.
- A file that fails the contract checks (llm_provider/role_contract.py) is skipped, logged and
  published as ROLE_FAILED; every other role runs. A role loaded with warnings logs them
  (``role_warnings``). Every change is published as a ROLE_* event
  (role_announcements.py turns them into notifications).
- ``check_for_changes()`` (called on the fast heartbeat) compares each file's modification time
  and size, then its content hash, and reloads only files whose content changed. A reload is a
  synchronous swap: events already being dispatched finish on the old handlers, later events reach
  the new ones. A new version that fails its checks, or whose intent handlers the IntentProcessor
  would refuse, leaves the old one live (ROLE_RELOAD_FAILED): it is refused before any unwiring.
- The daemon loads and reloads through the ``*_after_trial`` variants: each file is first imported
  in a short-lived child process (role_trial.py), and a file whose trial does not finish within
  the bound is failed without being imported here, so it cannot stall the loop. ``loading`` says
  which files are in trial and since when.
- A quarantined role is unsubscribed until its file changes.
- Event handlers are subscribed on the bus under the role's name; intent handlers are registered
  with the IntentProcessor by ``set_intent_processor``, which fails (ROLE_FAILED) a role it refuses.
"""

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from common.errors import BusClosedError, BusFullError
from common.events import (
    ROLE_FAILED,
    ROLE_LOADED,
    ROLE_QUARANTINED,
    ROLE_RELOAD_FAILED,
    ROLE_UNLOADED,
)
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from common.role_import import file_digest, module_name, restore_module
from llm_provider.role_contract import LoadedRole, Problem, check_role, registration_problems

log = structlog.get_logger("intentd.roles")

REGISTRY = "_registry"  # publisher name; never a valid role name
TRIALS_AT_ONCE = 4  # trial imports (child processes) running at the same time
# a trial import of a file's bytes: None when it finished in time, else what went wrong
Trial = Callable[[Path, bytes], Awaitable[str | None]]


def _is_role_file(name: str) -> bool:
    """A role file is a ``.py`` file of the roles folder whose name does not start with ``_``."""
    return name.endswith(".py") and not name.startswith("_")


class RoleRegistry:
    """Discover roles in a folder, wire them to the bus and the IntentProcessor, reload them."""

    def __init__(
        self,
        roles_directory: str | Path = "roles",
        message_bus: MessageBus | None = None,
        *,
        allowed_imports: Iterable[str] = (),
    ):
        self.roles_directory = Path(roles_directory)
        self.message_bus = message_bus
        self.allowed_imports = tuple(allowed_imports)
        self.roles: dict[str, LoadedRole] = {}
        self.failed: dict[Path, list[Problem]] = {}
        self.quarantined: set[str] = set()
        self.event_counts: Counter[str] = Counter()  # ROLE_* events by type, for the metrics
        self.intent_processor: IntentProcessor | None = None
        self._seen: dict[Path, tuple[int, int, str]] = {}
        self.loading: dict[Path, float] = {}  # files whose trial import runs, since (monotonic)

    def role_files(self) -> list[Path]:
        """Return the role files in the folder, sorted by name."""
        if not self.roles_directory.is_dir():
            return []
        return sorted(p for p in self.roles_directory.iterdir() if _is_role_file(p.name))

    def folder_state(self) -> tuple[tuple[str, int, int], ...]:
        """Return each role file's name, modification time and size: a rescan can only find
        something when this changed (one directory read and a stat per file)."""
        try:
            with os.scandir(self.roles_directory) as entries:
                found = [
                    (entry.name, entry.stat()) for entry in entries if _is_role_file(entry.name)
                ]
        except OSError:  # no folder (yet): nothing to load
            return ()
        return tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in found))

    def discover_roles(self) -> dict[str, LoadedRole]:
        """Check and wire every role file not loaded yet; return the loaded roles by name."""
        for path in self._undiscovered():
            self._load(path, fresh=False)
        return self.roles

    def check_for_changes(self) -> list[str]:
        """Load added files, reload changed ones, unload deleted ones; return the file names."""
        changed, paths = self._changes()
        for path in paths:
            self._load(path, fresh=True)
        return changed

    async def discover_roles_after_trial(self, trial: Trial) -> dict[str, LoadedRole]:
        """As ``discover_roles``, importing each file only once its ``trial`` import finished."""
        await self._load_after_trial(self._undiscovered(), trial, fresh=False)
        return self.roles

    async def check_for_changes_after_trial(self, trial: Trial) -> list[str]:
        """As ``check_for_changes``, importing each file only once its ``trial`` import finished."""
        changed, paths = self._changes()
        await self._load_after_trial(paths, trial, fresh=True)
        return changed

    def _undiscovered(self) -> list[Path]:
        loaded_paths = {role.path for role in self.roles.values()}
        return [
            path
            for path in self.role_files()
            if path not in loaded_paths and self._note(path) is not None
        ]

    def _changes(self) -> tuple[list[str], list[Path]]:
        """Unload deleted files; return the names of all changes and the files to (re)load."""
        changed, paths = [], []
        present = set(self.role_files())
        for path in [p for p in self._seen if p not in present]:
            changed.append(path.name)
            self._forget(path)
        for path in sorted(present):
            seen = self._seen.get(path)
            now = self._note(path, unless_stat=seen)
            if now is None or (seen is not None and now[2] == seen[2]):
                continue
            changed.append(path.name)
            paths.append(path)
        return changed, paths

    async def _load_after_trial(self, paths: list[Path], trial: Trial, *, fresh: bool) -> None:
        """Trial-import ``paths`` (a few at once), then load each in order as its trial ends."""
        limit = asyncio.Semaphore(TRIALS_AT_ONCE)

        async def run(path: Path) -> tuple[bytes | None, str | None]:
            async with limit:
                source = _read(path)  # the bytes tried are the bytes imported
                if source is None:
                    return None, None  # gone or unreadable: check_role says which
                self.loading[path] = time.monotonic()
                return source, await trial(path, source)

        try:
            async with asyncio.TaskGroup() as tasks:
                trials = [tasks.create_task(run(path)) for path in paths]
                for path, task in zip(paths, trials, strict=True):
                    source, problem = await task
                    if problem is None:
                        self._load(path, fresh=fresh, source=source)
                    else:
                        self._fail(path, [Problem(path, 0, problem)], self._role_at(path))
                    self.loading.pop(path, None)
        finally:
            for path in paths:
                self.loading.pop(path, None)

    def _note(
        self, path: Path, unless_stat: tuple[int, int, str] | None = None
    ) -> tuple[int, int, str] | None:
        """Record the file's (mtime, size, digest), hashing only if mtime or size moved."""
        try:
            stat = path.stat()
            if unless_stat is not None and unless_stat[:2] == (stat.st_mtime_ns, stat.st_size):
                return unless_stat
            # stat before reading: an edit racing this read shows up as a change next tick
            seen = (stat.st_mtime_ns, stat.st_size, file_digest(path))
        except OSError:
            return None  # deleted meanwhile: the next tick unloads it
        self._seen[path] = seen
        return seen

    def quarantine(self, name: str, failures: int, window: float, error: str) -> None:
        """Unsubscribe role ``name`` until its file changes (unknown names are ignored)."""
        if name not in self.roles or name in self.quarantined:
            return
        self.quarantined.add(name)
        if self.message_bus is not None:
            self.message_bus.unsubscribe_role(name)
        log.error("role_quarantined", role=name, failures=failures, window_s=window, error=error)
        self._publish(
            ROLE_QUARANTINED,
            {
                "role": name,
                "failures": failures,
                "window": window,
                "error": error,
            },
        )

    def set_intent_processor(self, processor: IntentProcessor) -> None:
        """Register loaded roles' intent handlers with ``processor``; fail the roles it refuses."""
        self.intent_processor = processor
        for role in list(self.roles.values()):
            problems = registration_problems(role, processor)
            if problems:
                self._unwire(role.name)
                self._fail(role.path, problems, live=None)
            else:
                self._register_intents(role, processor)

    # -- loading and unloading ------------------------------------------------------------

    def _load(self, path: Path, *, fresh: bool, source: bytes | None = None) -> LoadedRole | None:
        live = self._role_at(path)
        role, problems = check_role(
            path, fresh=fresh, allowed_imports=self.allowed_imports, source=source
        )
        warnings = [str(problem) for problem in problems if problem.warning]
        if role is not None and self.intent_processor is not None:
            problems = registration_problems(role, self.intent_processor)
            if problems:  # refused before anything is unwired: the live version keeps running
                restore_module(module_name(path), live.module if live is not None else None)
                role = None
        if role is None:
            self._fail(path, problems, live)
            return None
        self.failed.pop(path, None)
        if live is not None:
            self._unwire(live.name)
        self._wire(role)
        log.info("role_loaded", role=role.name, path=str(path), reloaded=live is not None)
        if warnings:
            log.warning("role_warnings", role=role.name, path=str(path), problems=warnings)
        self._publish(
            ROLE_LOADED,
            {
                "role": role.name,
                "version": role.config.get("version"),
                "path": str(path),
                "reloaded": live is not None,
            },
        )
        return role

    def _fail(self, path: Path, problems: list[Problem], live: LoadedRole | None) -> None:
        self.failed[path] = problems
        lines = [str(problem) for problem in problems]
        if live is not None:
            log.error("role_reload_failed", role=live.name, path=str(path), problems=lines)
            self._publish(
                ROLE_RELOAD_FAILED, {"role": live.name, "path": str(path), "problems": lines}
            )
        else:
            log.error("role_failed", role=path.stem, path=str(path), problems=lines)
            self._publish(ROLE_FAILED, {"role": path.stem, "path": str(path), "problems": lines})

    def _forget(self, path: Path) -> None:
        self._seen.pop(path, None)
        self.failed.pop(path, None)
        live = self._role_at(path)
        restore_module(module_name(path), None)
        if live is None:
            return
        self._unwire(live.name)
        log.info("role_unloaded", role=live.name, path=str(path))
        self._publish(
            ROLE_UNLOADED,
            {
                "role": live.name,
                "path": str(path),
                "reason": f"its file {path.name!r} was deleted",
            },
        )

    def _role_at(self, path: Path) -> LoadedRole | None:
        return next((role for role in self.roles.values() if role.path == path), None)

    def _wire(self, role: LoadedRole) -> None:
        self.roles[role.name] = role
        if self.message_bus is not None:
            for event_type, handler in role.event_handlers.items():
                self.message_bus.subscribe(role.name, event_type, handler)
        if self.intent_processor is not None:
            self._register_intents(role, self.intent_processor)

    def _unwire(self, name: str) -> None:
        self.roles.pop(name, None)
        self.quarantined.discard(name)
        if self.message_bus is not None:
            self.message_bus.unsubscribe_role(name)
        if self.intent_processor is not None:
            self.intent_processor.unregister_role(name)

    @staticmethod
    def _register_intents(role: LoadedRole, processor: IntentProcessor) -> None:
        for intent_type, handler in role.intents.items():
            processor.register_role_intent_handler(intent_type, handler, role=role.name)

    def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        self.event_counts[event_type] += 1
        if self.message_bus is None:
            return
        try:
            self.message_bus.publish(REGISTRY, event_type, data, source="role_registry")
        except (BusFullError, BusClosedError) as err:
            log.warning("role_event_not_published", event_type=event_type, error=str(err))


def _read(path: Path) -> bytes | None:
    """Return a role file's bytes, or None if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError:
        return None
