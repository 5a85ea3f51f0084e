"""Readiness checks: named callables that say why a part of the daemon is not ready yet.

A check returns ``None`` when its part is ready, or one sentence saying why it is not. Parts
register their own check with one line, e.g. ``supervisor.readiness.add("store", store.not_ready)``.
"""

from collections.abc import Callable

import structlog

log = structlog.get_logger("intentd.readiness")

ReadinessCheck = Callable[[], str | None]


class Readiness:
    """Hold the daemon's readiness checks and report on them all at once."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        """Report ``check()`` under ``name`` (replacing an earlier check of that name)."""
        self._checks[name] = check

    def report(self) -> dict[str, str | None]:
        """Return each check's reason for not being ready, or ``None`` when it is ready."""
        reasons: dict[str, str | None] = {}
        for name, check in self._checks.items():
            try:
                reasons[name] = check()
            except Exception as err:
                log.error("readiness_check_failed", check=name, error=str(err), exc_info=err)
                reasons[name] = f"the {name} readiness check raised {type(err).__name__}: {err}"
        return reasons
