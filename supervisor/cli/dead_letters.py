"""``intentd dead-letters list`` and ``intentd dead-letters retry ID|--all``: read the outbox.

They work on the store whether or not the daemon runs; a running daemon picks retried entries up
within ``outbox.recheck_interval`` seconds.
"""

import argparse
import json
import sys
import time
from typing import Any

from common.clock import utc_iso
from common.errors import IntentdError
from supervisor.cli._config import on_store
from supervisor.store.base import OutboxEntry


def add_commands(commands: Any, config_help: str) -> None:
    """Add the ``dead-letters`` subcommand to the CLI's subparsers."""
    parser = commands.add_parser(
        "dead-letters", help="inspect and replay undelivered notifications"
    )
    sub = parser.add_subparsers(dest="dead_letters_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.add_argument("--config", default=None, help=config_help)
    listing.set_defaults(handler=list_dead_letters)
    retry = sub.add_parser("retry", help="put dead letters back in the outbox")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID", help="dead letter ids")
    which.add_argument("--all", action="store_true", help="retry every dead letter")
    retry.add_argument("--config", default=None, help=config_help)
    retry.set_defaults(handler=retry_dead_letters)


def list_dead_letters(args: argparse.Namespace) -> int:
    """Print the dead letters."""
    found: list[OutboxEntry] = on_store(args.config, lambda p: p.outbox.dead_letters(), [])
    for entry in found:
        row = {
            "id": entry.id,
            "channel": entry.address,
            "attempts": entry.attempts,
            "created": utc_iso(entry.created_at),
            "error": entry.last_error,
            "text": entry.text,
        }
        if args.json:
            print(json.dumps(row))
        else:
            print(
                f"{entry.id}  {entry.address}  created {row['created']}  "
                f"attempts={entry.attempts}  {entry.last_error}  {entry.text!r:.60}"
            )
    if not found and not args.json:
        print("no dead letters")
    return 0


def retry_dead_letters(args: argparse.Namespace) -> int:
    """Put the chosen dead letters back in line for delivery."""
    ids = None if args.all else args.ids
    retried = on_store(args.config, lambda parts: parts.outbox.retry_dead(ids, time.time()), None)
    if retried is None:
        raise IntentdError("the store does not exist yet, so there are no dead letters to retry")
    missing = sorted(set(args.ids) - set(retried))
    if missing:
        print(
            f"intentd: no dead letter has id {', '.join(map(str, missing))}; "
            "list them with 'intentd dead-letters list'",
            file=sys.stderr,
        )
    if retried or not missing:
        print(f"re-queued {len(retried)} dead letter(s)" + (f": {retried}" if retried else ""))
    return 1 if missing else 0
