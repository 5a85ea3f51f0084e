"""The ``intentd`` command line."""

import argparse
import asyncio
import difflib
import sys
from importlib.metadata import PackageNotFoundError, version

from common.errors import ConfigError, IntentdError
from supervisor.cli._config import DEFAULT_CONFIG, config_path, load_cli_config
from supervisor.cli.call import add_call_command
from supervisor.cli.dead_letters import add_commands as add_outbox_commands
from supervisor.cli.events import add_commands as add_event_commands
from supervisor.cli.records import add_commands as add_store_commands
from supervisor.cli.roles import add_role_commands
from supervisor.config import Config, load_config
from supervisor.delivery.channels import CommunicationManager
from supervisor.logs import configure_logging


def _version() -> str:
    try:
        return version("intentd")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="intentd",
        description=(
            "A daemon where drop-in role files turn events into intents: notifications, "
            "timers, audit records and LLM workflows."
        ),
        epilog="Start with 'intentd run' in a folder with config.yaml and roles/.",
    )
    parser.add_argument("--version", action="version", version=f"intentd {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="start the daemon (stop with Ctrl-C or SIGTERM)")
    run.add_argument(
        "--config", default=None, help=f"config file (default: ./{DEFAULT_CONFIG} if present)"
    )
    run.add_argument(
        "--strict", action="store_true", help="refuse to start if any role file fails its checks"
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG, help="config file to check")
    check.set_defaults(handler=_check_config)

    add_store_commands(commands, f"config file (default: ./{DEFAULT_CONFIG} if present)")
    add_role_commands(commands, lambda path: load_cli_config(path))
    add_outbox_commands(commands, f"config file (default: ./{DEFAULT_CONFIG} if present)")
    add_event_commands(commands, f"config file (default: ./{DEFAULT_CONFIG} if present)")
    add_call_command(commands, lambda path: load_cli_config(path))

    status = commands.add_parser("status", help="show a running daemon's status (over HTTP)")
    status.add_argument("--config", default=None, help="the daemon's config file")
    status.set_defaults(handler=_status)

    emit = commands.add_parser("emit", help="publish an event through a running daemon")
    emit.add_argument("event_type", metavar="EVENT_TYPE", help="an UPPER_SNAKE_CASE event name")
    emit.add_argument("--data", default="{}", help="the event data as a JSON object (default {})")
    emit.add_argument("--config", default=None, help="the daemon's config file")
    emit.set_defaults(handler=_emit)
    return parser


def _run(args: argparse.Namespace) -> int:
    from supervisor.supervisor import Supervisor

    path = config_path(args.config)
    config = load_config(path)
    if args.strict:
        strict_roles = config.roles.model_copy(update={"strict": True})
        config = config.model_copy(update={"roles": strict_roles})
    configure_logging(config.logging.level, config.logging.format)
    asyncio.run(Supervisor(path, config=config).run())
    return 0


def _status(args: argparse.Namespace) -> int:
    from supervisor.cli.api_client import show_status

    config = load_cli_config(args.config)
    asyncio.run(show_status(config.http, sys.stdout))
    return 0


def _emit(args: argparse.Namespace) -> int:
    from supervisor.cli.api_client import emit

    config = load_cli_config(args.config)
    asyncio.run(emit(config.http, args.event_type, args.data, sys.stdout))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    channels = CommunicationManager(config.channels)
    if config.slack.enabled:
        channels.add_channel("slack", None)  # only its name counts here; nothing is sent
    channels.check()
    for warning in role_settings_warnings(config):
        print(f"{args.path}: warning: {warning}")
    print(f"{args.path}: ok")
    return 0


def role_settings_warnings(config: Config) -> list[str]:
    """Return a warning for each ``roles.settings.<name>`` that names no role file."""
    folder = config.resolve(config.roles.directory)
    names = sorted(path.stem for path in folder.glob("*.py") if not path.name.startswith("_"))
    warnings = []
    for name in config.roles.settings:
        if name in names:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        fix = f"did you mean {close[0]!r}?" if close else "rename the key to a role's name"
        warnings.append(
            f"roles.settings.{name} names no role file ({name}.py is not in "
            f"{config.roles.directory}/), so no role reads it; {fix}"
        )
    return warnings


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print(f"intentd: configuration error: {err}", file=sys.stderr)
        return 2
    except IntentdError as err:
        print(f"intentd: {err}", file=sys.stderr)
        return 1
