"""The role authoring commands: ``intentd check``, ``intentd new-role`` and ``intentd roles``.

``check`` and ``roles`` trial-import each file in a child process first, within
``roles.import_timeout``, as the daemon does, so a file that stalls at import is reported, not
waited for.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.errors import RoleContractError
from llm_provider.role_config import ROLE_NAME, suggest_role_name
from llm_provider.role_contract import LoadedRole, display_path, errors, expand_paths
from llm_provider.role_events import check_with_events
from llm_provider.role_registry import TRIALS_AT_ONCE, RoleRegistry
from llm_provider.role_template import render_role, render_test
from llm_provider.role_trial import trial_import
from supervisor.config import Config
from supervisor.logs import configure_logging


def add_role_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    config_loader: Callable[[str | None], Config],
) -> None:
    """Add the role authoring subcommands; ``config_loader(--config)`` reads the config."""
    check = commands.add_parser(
        "check", help="check role files against the role contract without starting the daemon"
    )
    check.add_argument("paths", nargs="*", type=Path, help="role files or folders (default: roles)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument("--config", default=None, help="config file naming the roles folder")
    check.set_defaults(handler=check_command, load_config=config_loader)

    new = commands.add_parser("new-role", help="write roles/NAME.py and tests/roles/test_NAME.py")
    new.add_argument("name", help="the role's name, lowercase snake_case")
    new.add_argument("--config", default=None, help="config file naming the roles folder")
    new.set_defaults(handler=new_role_command, load_config=config_loader)

    roles = commands.add_parser("roles", help="list the roles with their events, tools and intents")
    roles.add_argument("--config", default=None, help="config file naming the roles folder")
    roles.add_argument("--json", action="store_true", help="print the roles as GET /roles does")
    roles.set_defaults(handler=roles_command, load_config=config_loader)


def check_command(args: argparse.Namespace) -> int:
    """Check role files; print one line per problem; return 1 if there is any."""
    config = args.load_config(args.config)
    folder = _roles_folder(config)
    paths = args.paths or [folder]
    sources = asyncio.run(_trial_imports(expand_paths(paths), config.roles.import_timeout))
    roles, problems = check_with_events(
        paths,
        allowed_imports=config.roles.allowed_imports,
        schedule_events=[schedule.event for schedule in config.schedules],
        publishers=[folder] if folder.is_dir() else [],
        sources=sources,
    )
    failed = errors(problems)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not failed,
                    "roles": [role.name for role in roles],
                    "problems": [problem.to_json() for problem in problems],
                },
                indent=2,
            )
        )
    else:
        for problem in problems:
            print(problem)
        warnings = len(problems) - len(failed)
        counted = f", {warnings} warning(s)" if warnings else ""
        print(f"{len(roles)} role(s) ok, {len(failed)} problem(s){counted}")
    return 1 if failed else 0


def new_role_command(args: argparse.Namespace) -> int:
    """Write a new role file and its test from the template."""
    name = args.name
    if not ROLE_NAME.fullmatch(name):
        raise RoleContractError(
            f"role name {name!r} is not lowercase snake_case; use a name such as "
            f"{suggest_role_name(name)!r}"
        )
    config = args.load_config(args.config)
    role_file = _roles_folder(config) / f"{name}.py"
    test_file = config.base_dir / "tests" / "roles" / f"test_{name}.py"
    for path in (role_file, test_file):
        if path.exists():
            raise RoleContractError(
                f"{display_path(path)} already exists; pick another name or edit that file"
            )
    for path, text in ((role_file, render_role(name)), (test_file, render_test(name))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {display_path(path)}")
    return 0


def roles_command(args: argparse.Namespace) -> int:
    """List the roles in the roles folder as the daemon loads them, and the files it skips."""
    configure_logging("CRITICAL", stream=sys.stderr)  # the listing says what the logs would
    config = args.load_config(args.config)
    registry = RoleRegistry(_roles_folder(config), allowed_imports=config.roles.allowed_imports)

    def trial(path: Path, source: bytes) -> Awaitable[str | None]:
        return trial_import(path, source, config.roles.import_timeout)

    found = asyncio.run(registry.discover_roles_after_trial(trial))
    loaded = sorted(found.values(), key=lambda role: role.name)
    if args.json:
        failed = [problem.to_json() for found in registry.failed.values() for problem in found]
        summaries = [role.summary() for role in loaded]
        print(json.dumps({"roles": summaries, "failed": failed}, indent=2))
        return 0
    for role in loaded:
        print(describe_role(role))
    for problems in registry.failed.values():
        print(f"failed  {problems[0]}" + (f" (+{len(problems) - 1} more)" if problems[1:] else ""))
    return 0


def describe_role(role: LoadedRole) -> str:
    """Return one line: name, version, events, tools and intents of a loaded role."""
    events = ", ".join(role.event_handlers) or "-"
    tools = ", ".join(getattr(tool, "tool_name", "?") for tool in role.tools) or "-"
    intents = ", ".join(cls.__name__ for cls in role.intents) or "-"
    version = role.config.get("version")
    return f"{role.name} {version}  events: {events}  tools: {tools}  intents: {intents}"


async def _trial_imports(files: list[Path], bound: float) -> dict[Path, bytes | str]:
    """Trial-import ``files`` as the daemon does: map each to its bytes, or to its problem."""
    limit = asyncio.Semaphore(TRIALS_AT_ONCE)
    readable = {path: source for path in files if (source := _read(path)) is not None}

    async def one(path: Path, source: bytes) -> bytes | str:
        async with limit:
            problem = await trial_import(path, source, bound)
        return source if problem is None else problem

    found = await asyncio.gather(*(one(path, source) for path, source in readable.items()))
    return dict(zip(readable, found, strict=True))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None  # check_role reports it


def _roles_folder(config: Config) -> Path:
    return config.resolve(config.roles.directory)
