"""Subscriptions to event types that nothing publishes: an ``intentd check`` warning.

Rules kept here:
- An event type is published by something intentd knows of when it is in ``common/events.py``,
  is the event of a schedule in config.yaml, is listed in a role's
  ``ROLE_CONFIG['external_events']`` (posted with ``POST /events`` or ``intentd emit``), or is
  published by a role file: ``EventIntent(event_type=...)`` or ``services.publish(...)`` with a
  literal name or a module-level constant.
- A subscription to any other type is a warning with "did you mean ...?" against those types;
  the role still loads, since an outside source may post it.
"""

import ast
import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path

from common.events import KNOWN_EVENTS, MISSPELLING_RATIO
from llm_provider.role_contract import LoadedRole, Problem, check_paths, expand_paths
from llm_provider.role_lint import registration_values


def check_with_events(
    paths: list[Path],
    *,
    allowed_imports: Iterable[str] = (),
    schedule_events: Iterable[str] = (),
    publishers: Iterable[Path] = (),
    sources: dict[Path, bytes | str] | None = None,
) -> tuple[list[LoadedRole], list[Problem]]:
    """Check role files as ``intentd check`` does: each file's contract, then the subscriptions.

    ``publishers`` are more role files (the roles folder) whose published events count as known;
    ``sources`` are the trial imports' results (see ``check_paths``).
    """
    roles, problems = check_paths(paths, allowed_imports, sources)
    files = set(expand_paths([*paths, *publishers]))
    problems += unpublished_problems(roles, known_events(files, roles, schedule_events))
    return roles, sorted(problems, key=lambda problem: (str(problem.path), problem.line))


def known_events(
    role_files: Iterable[Path], roles: Iterable[LoadedRole], schedules: Iterable[str]
) -> set[str]:
    """Return every event type intentd knows a publisher of (see the rules above)."""
    known = set(KNOWN_EVENTS) | set(schedules)
    for role in roles:
        known.update(role.config.get("external_events", []))
    for path in role_files:
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue  # the contract check reports the file
        known.update(_published(tree))
    return known


def unpublished_problems(roles: Iterable[LoadedRole], known: set[str]) -> list[Problem]:
    """Return a warning for each subscription of ``roles`` to a type not in ``known``."""
    problems = []
    for role in roles:
        lines = _subscription_lines(role.path)
        for event_type in role.event_handlers:
            if event_type in known:
                continue
            close = difflib.get_close_matches(event_type, known, n=1, cutoff=MISSPELLING_RATIO)
            found = (
                f"event_handlers key {event_type!r} is published by nothing intentd knows of "
                "(common/events.py, a schedule, a role's EventIntent or external_events)"
            )
            fix = (
                f"did you mean {close[0]!r}?"
                if close
                else "if it is posted from outside (POST /events, intentd emit), list it in "
                "ROLE_CONFIG['external_events'], else check its spelling"
            )
            problems.append(Problem(role.path, lines.get(event_type, 1), f"{found}; {fix}", True))
    return problems


def _published(tree: ast.Module) -> Iterator[str]:
    constants = _constants(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name not in ("EventIntent", "publish"):
            continue
        keyword = next((k.value for k in node.keywords if k.arg == "event_type"), None)
        argument = keyword if keyword is not None else (node.args[0] if node.args else None)
        value = _value(argument, constants)
        if value is not None:
            yield value


def _subscription_lines(path: Path) -> dict[str, int]:
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    constants = _constants(tree)
    lines: dict[str, int] = {}
    for mapping in registration_values(tree, "event_handlers"):
        if isinstance(mapping, ast.Dict):
            for key in mapping.keys:
                value = _value(key, constants)
                if value is not None and key is not None:
                    lines.setdefault(value, key.lineno)
    return lines


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _value(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None
