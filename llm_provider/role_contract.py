"""The role contract, checked: every rule a role file must keep, and one line per broken rule.

Rules kept here:
- ``check_role(path)`` reads the file's source (role_lint.py), imports it, calls
  ``register_role()`` and reports ALL problems at once, each as
  ``roles/foo.py:LINE: rule, what was found, how to fix``.
- A role that has any error is not returned; nothing of it gets wired in. Warnings are reported
  with the role and leave it loaded. A file that breaks an import rule is not executed.
- A file holding a NUL byte is reported at that byte's line; a file over ``MAX_LINES`` (300)
  lines is a problem.
- ROLE_CONFIG's own rules live in role_config.py.
"""

import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from common.errors import EventNameError, RoleContractError
from common.events import check_event_type, misspelt_event
from common.intent_processor import IntentProcessor
from common.intents import CORE_INTENTS, Intent
from common.role_import import import_role_module, module_name, restore_module
from common.types import intent_handler_arity
from llm_provider.role_config import ROLE_NAME, config_problems, suggest_role_name
from llm_provider.role_lint import lint_role

REGISTRATION_KEYS = ("config", "event_handlers", "tools", "intents")
MAX_LINES = 300


@dataclass(frozen=True)
class Problem:
    """One broken rule of one role file; a warning leaves the role loaded."""

    path: Path
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f":{self.line}" if self.line else ""  # 0: about the whole file, not a line
        marker = "warning: " if self.warning else ""
        return f"{display_path(self.path)}{where}: {marker}{self.message}"

    def to_json(self) -> dict[str, Any]:
        """Return the problem as a JSON-ready dict."""
        return {
            "path": display_path(self.path),
            "line": self.line,
            "severity": "warning" if self.warning else "error",
            "message": self.message,
        }


def errors(problems: list[Problem]) -> list[Problem]:
    """Return the problems that keep a role from loading."""
    return [problem for problem in problems if not problem.warning]


@dataclass
class LoadedRole:
    """A role that passed its checks."""

    name: str
    path: Path
    module: ModuleType
    config: dict[str, Any]
    event_handlers: dict[str, Any]
    tools: list[Any]
    intents: dict[type, Any]

    def summary(self) -> dict[str, Any]:
        """Return what the router and a reader see of this role, JSON-ready."""
        config = self.config
        return {
            "name": self.name,
            "version": config.get("version"),
            "description": config.get("description"),
            "path": str(self.path),
            "llm_type": config.get("llm_type"),
            "fast_reply": config.get("fast_reply", False),
            "when_to_use": config.get("when_to_use"),
            "parameters": config.get("parameters", {}),
            "events": sorted(self.event_handlers),
            "intents": sorted(intent.__name__ for intent in self.intents),
            "tools": [getattr(tool, "tool_name", "?") for tool in self.tools],
        }


def display_path(path: Path) -> str:
    """Return ``path`` relative to the working folder when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def check_role(
    path: Path,
    *,
    fresh: bool = False,
    allowed_imports: Iterable[str] = (),
    source: bytes | None = None,
) -> tuple[LoadedRole | None, list[Problem]]:
    """Check every rule of ``path`` (its ``source`` bytes when given); return the role (None if
    any error) and its problems."""
    path = Path(path)
    problems: list[Problem] = []

    def report(line: int, message: str, warning: bool = False) -> None:
        problems.append(Problem(path, line, message, warning))

    if not ROLE_NAME.fullmatch(path.stem):
        report(
            1,
            f"role file name {path.name!r} is not lowercase snake_case; rename it, e.g. "
            f"{suggest_role_name(path.stem)}.py",
        )
    try:
        source = path.read_bytes() if source is None else source
    except OSError as err:
        report(1, f"the file cannot be read ({err.strerror}); check that it exists and is readable")
        return None, problems
    if b"\0" in source:  # compile() would blame line 1
        line = source.count(b"\n", 0, source.index(b"\0")) + 1
        report(line, "the file holds a NUL byte; remove it (a bad copy or an editor put it there)")
        return None, problems
    lines = source.count(b"\n") + (not source.endswith(b"\n") and bool(source))
    if lines > MAX_LINES:
        report(
            MAX_LINES + 1,
            f"the file has {lines} lines, over the {MAX_LINES}-line limit for "
            "a role file; split it into two roles or move a helper into common/",
        )
    try:
        findings = lint_role(source, allowed_imports)
    except SyntaxError as err:
        report(
            err.lineno or 1,
            f"the file has a syntax error ({err.msg}); fix it so that "
            f"'python -m py_compile {path.name}' passes",
        )
        return None, problems
    except ValueError as err:  # null bytes: Python 3.11 raises ValueError, not SyntaxError
        report(
            1,
            f"the file cannot be compiled ({err}); fix it so that "
            f"'python -m py_compile {path.name}' passes",
        )
        return None, problems
    for finding in findings:
        report(finding.line, finding.message, finding.warning)
    if any(finding.blocks_import for finding in findings):
        return None, problems
    name = module_name(path)
    previous = sys.modules.get(name)
    try:
        module = import_role_module(path, fresh=fresh, source=source)
    except SyntaxError as err:
        report(
            err.lineno or 1,
            f"the file has a syntax error ({err.msg}); fix it so that "
            f"'python -m py_compile {path.name}' passes",
        )
        return None, problems
    except (Exception, SystemExit) as err:
        report(
            _raising_line(err, path),
            f"importing the file raised {_describe(err)}; roles may "
            "import only common, strands and the standard library, and do no work at import",
        )
        return None, problems
    role = _check_module(module, path, report)
    problems.sort(key=lambda problem: problem.line)
    if errors(problems):
        restore_module(name, previous)
        return None, problems
    return role, problems


def _check_module(
    module: ModuleType, path: Path, report: Callable[[int, str], None]
) -> LoadedRole | None:
    register = getattr(module, "register_role", None)
    if register is None:
        report(
            1,
            "the file has no register_role() function; add 'def register_role()' returning "
            "{'config': ROLE_CONFIG, 'event_handlers': {...}, 'tools': [...], 'intents': {...}}",
        )
        return None
    where = _line_of(register, _assignment_line(path, "register_role") or 1)
    if not callable(register):
        report(
            where,
            f"register_role is {type(register).__name__} {register!r:.60}, not a "
            "function; define 'def register_role()'",
        )
        return None
    try:
        registration = register()
    except (Exception, SystemExit) as err:
        report(
            _raising_line(err, path, where),
            f"register_role() raised {_describe(err)}; it must only return a literal dict",
        )
        return None
    if not isinstance(registration, dict):
        report(
            where,
            f"register_role() returned a {type(registration).__name__}, not a dict; "
            "return {'config': ..., 'event_handlers': ..., 'tools': ..., 'intents': ...}",
        )
        return None
    missing = [key for key in REGISTRATION_KEYS if key not in registration]
    unknown = [key for key in registration if key not in REGISTRATION_KEYS]
    if missing:
        report(
            where,
            f"register_role() result lacks key(s) {', '.join(map(repr, missing))}; "
            "return all of 'config', 'event_handlers', 'tools', 'intents' (empty if unused)",
        )
    if unknown:
        report(
            where,
            f"register_role() result has unknown key(s) {', '.join(map(repr, unknown))};"
            " remove them (allowed: 'config', 'event_handlers', 'tools', 'intents')",
        )
    config_line = _assignment_line(path, "ROLE_CONFIG") or where
    config = registration.get("config", {})
    _check_config(config, path, config_line, report)
    handlers = registration.get("event_handlers", {})
    tools = registration.get("tools", [])
    intents = registration.get("intents", {})
    _check_event_handlers(handlers, where, report)
    _check_tools(tools, where, report)
    _check_intents(intents, module, where, report)
    shapes = ((config, dict), (handlers, dict), (tools, list), (intents, dict))
    if missing or unknown or not all(isinstance(value, kind) for value, kind in shapes):
        return None
    return LoadedRole(
        name=str(config.get("name", path.stem)),
        path=path,
        module=module,
        config=config,
        event_handlers=dict(handlers),
        tools=list(tools),
        intents=dict(intents),
    )


def _check_config(config: Any, path: Path, line: int, report: Callable[[int, str], None]) -> None:
    if not isinstance(config, dict):
        report(
            line,
            f"register_role()['config'] is {type(config).__name__} {config!r:.60}; "
            "set it to the ROLE_CONFIG dict",
        )
        return
    for message in config_problems(config):
        report(line, message)
    name = config.get("name")
    if isinstance(name, str) and name != path.stem:
        report(
            line,
            f"ROLE_CONFIG['name'] is {name!r} but the file is {path.name!r}; the name "
            f"must equal the file name, so set 'name': {path.stem!r} or rename the file",
        )


def _check_event_handlers(handlers: Any, where: int, report: Callable[[int, str], None]) -> None:
    if not isinstance(handlers, dict):
        report(
            where,
            f"register_role()['event_handlers'] is {type(handlers).__name__}; make it "
            "a dict of event name to handler, e.g. {'TIMER_EXPIRED': handle_timer_expired}",
        )
        return
    for event_type, handler in handlers.items():
        try:
            check_event_type(event_type, "event_handlers key")
        except EventNameError as err:
            report(where, str(err))
        else:
            known = misspelt_event(event_type)
            if known is not None:
                report(
                    where,
                    f"event_handlers key {event_type!r} is not a known event name but "
                    f"is close to one; did you mean {known!r}?",
                )
        if not callable(handler):
            report(
                where,
                f"event handler for {event_type!r} is {type(handler).__name__} "
                f"{handler!r:.60}, not callable; map the event to a function "
                "'def handle_x(event_data, context)'",
            )
            continue
        if not _accepts(handler, 2):
            report(
                _line_of(handler, where),
                f"event handler {_name(handler)!r} for {event_type!r} "
                f"has signature {_signature(handler)}; it must accept (event_data, context)",
            )


def _check_tools(tools: Any, where: int, report: Callable[[int, str], None]) -> None:
    if not isinstance(tools, list):
        report(
            where,
            f"register_role()['tools'] is {type(tools).__name__}; make it a list of "
            "strands @tool functions ([] if none)",
        )
        return
    if not tools:
        return
    from strands.types.tools import AgentTool  # imported only when a role has tools

    for tool in tools:
        line = _line_of(getattr(tool, "_tool_func", tool), where)
        if not isinstance(tool, AgentTool):
            report(
                line,
                f"tool {_name(tool)!r} is {type(tool).__name__}, not a strands tool; "
                "decorate it with '@tool' from strands",
            )
            continue
        description = (tool.tool_spec or {}).get("description", "")
        if not isinstance(description, str) or description.strip() in ("", tool.tool_name):
            report(
                line,
                f"tool {tool.tool_name!r} has no description; give the function a "
                "docstring (the model reads it)",
            )


def _check_intents(
    intents: Any, module: ModuleType, where: int, report: Callable[[int, str], None]
) -> None:
    if not isinstance(intents, dict):
        report(
            where,
            f"register_role()['intents'] is {type(intents).__name__}; make it a dict "
            "of Intent subclass to async handler ({} if none)",
        )
        return
    for intent_type, handler in intents.items():
        if not (isinstance(intent_type, type) and issubclass(intent_type, Intent)):
            report(
                _line_of(intent_type, where),
                f"intents key {_name(intent_type)!r} is not a "
                "subclass of common.intents.Intent; declare '@dataclass class XIntent(Intent)'",
            )
        elif intent_type in CORE_INTENTS:
            report(
                where,
                f"intents key {intent_type.__name__!r} is a core intent, carried out by "
                "intentd for every role; handle only intents this file defines, e.g. "
                "'@dataclass class XIntent(Intent)'",
            )
        elif intent_type.__module__ != module.__name__:
            report(
                where,
                f"intents key {intent_type.__name__!r} is defined in module "
                f"{intent_type.__module__!r}, not in this file; handle only intents this "
                "file defines, e.g. '@dataclass class XIntent(Intent)'",
            )
        elif inspect.isabstract(intent_type):
            report(
                _line_of(intent_type, where),
                f"intent {intent_type.__name__!r} does not "
                "implement validate(); add 'def validate(self) -> bool'",
            )
        try:
            intent_handler_arity(handler)
        except TypeError as err:
            report(_line_of(handler, where), str(err))


def _accepts(function: Callable[..., Any], count: int) -> bool:
    try:
        inspect.signature(function).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True  # builtins without a signature: let the call decide
    return True


def _signature(function: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(?)"


def _name(thing: Any) -> str:
    return getattr(thing, "__qualname__", None) or getattr(thing, "tool_name", None) or repr(thing)


def _line_of(thing: Any, default: int) -> int:
    code = getattr(thing, "__code__", None)
    if code is not None:
        return int(code.co_firstlineno)
    try:
        return inspect.getsourcelines(thing)[1] or default
    except (OSError, TypeError):
        return default


def _assignment_line(path: Path, name: str) -> int:
    pattern = re.compile(rf"^(?:def\s+{name}\b|{name}\s*[:=])")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    return next((n for n, text in enumerate(lines, 1) if pattern.match(text)), 0)


def _raising_line(err: BaseException, path: Path, default: int = 1) -> int:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
    return frames[-1].lineno or default if frames else default


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def registration_problems(role: LoadedRole, processor: IntentProcessor) -> list[Problem]:
    """Return why ``processor`` would refuse ``role``'s intent handlers (empty if it would not)."""
    problems = []
    for intent_type, handler in role.intents.items():
        try:
            processor.check_role_intent_handler(intent_type, handler, role=role.name)
        except (TypeError, RoleContractError) as err:
            problems.append(Problem(role.path, _line_of(intent_type, 1), str(err)))
    return problems


def duplicate_problem(role: LoadedRole, first: Path) -> Problem:
    """Return the problem of ``role`` reusing the name of the role loaded from ``first``."""
    line = _assignment_line(role.path, "ROLE_CONFIG") or 1
    return Problem(
        role.path,
        line,
        f"role name {role.name!r} is already used by "
        f"{display_path(first)}; role names must be unique, so rename one of them",
    )


def check_paths(
    paths: list[Path],
    allowed_imports: Iterable[str] = (),
    sources: dict[Path, bytes | str] | None = None,
) -> tuple[list[LoadedRole], list[Problem]]:
    """Check role files and folders of role files together, names unique across all of them.

    ``sources`` maps a file to the bytes to check (as its trial import read them) or to the
    problem its trial import found, reported instead of importing it.
    """
    roles: dict[str, LoadedRole] = {}
    problems: list[Problem] = []
    for path in expand_paths(paths):
        given = (sources or {}).get(path)
        if isinstance(given, str):
            problems.append(Problem(path, 0, given))
            continue
        role, found = check_role(path, fresh=True, allowed_imports=allowed_imports, source=given)
        problems.extend(found)
        if role is None:
            continue
        if role.name in roles:
            problems.append(duplicate_problem(role, roles[role.name].path))
        else:
            roles[role.name] = role
    return list(roles.values()), problems


def expand_paths(paths: list[Path]) -> list[Path]:
    """Return role files: each file as given, each folder's ``*.py`` not starting with ``_``."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.py") if not p.name.startswith("_")))
        else:
            files.append(path)
    return files
