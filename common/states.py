"""States as data: each durable record's states and the moves allowed between them, in one table.

A component names its states with a ``StrEnum`` (the values are what the store holds) and builds
one ``Transitions`` table; every state change goes through ``Transitions.check`` first, so an
illegal move is an IllegalTransition naming the record, never a silently updated row.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from common.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)


class Transitions(Generic[S]):
    """The allowed moves between one record kind's states."""

    def __init__(self, kind: str, allowed: Mapping[S, frozenset[S]]) -> None:
        self.kind = kind
        self._allowed: dict[str, frozenset[str]] = {
            str(old): frozenset(str(new) for new in news) for old, news in allowed.items()
        }

    def allows(self, old: str, new: str) -> bool:
        """Return whether a record may move from ``old`` to ``new``."""
        return str(new) in self._allowed.get(str(old), frozenset())

    def check(self, record: object, old: str, new: S) -> S:
        """Return ``new`` if ``old -> new`` is allowed; raise IllegalTransition otherwise."""
        if not self.allows(old, new):
            allowed = sorted(self._allowed.get(str(old), ())) or "none"
            raise IllegalTransition(
                f"{self.kind} {record!r} cannot go from {str(old)!r} to {str(new)!r}; "
                f"allowed from {str(old)!r}: {allowed}"
            )
        return new
