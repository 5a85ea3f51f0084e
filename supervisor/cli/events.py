"""``intentd events list|show|retry``: inspect and replay dead events in the journal.

They work on the store whether or not the daemon runs; a running daemon picks retried events up
within ``journal.recheck_interval`` seconds.
"""

import argparse
import json
import sys
import time
from typing import Any

from common.clock import utc_iso as iso
from common.errors import IntentdError
from supervisor.cli._config import on_store
from supervisor.store.journal import JournalEntry


def add_commands(commands: Any, config_help: str) -> None:
    """Add the ``events`` subcommand to the CLI's subparsers."""
    parser = commands.add_parser("events", help="inspect and replay dead events in the journal")
    sub = parser.add_subparsers(dest="events_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="list dead events, oldest first")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.add_argument("--config", default=None, help=config_help)
    listing.set_defaults(handler=list_events)
    show = sub.add_parser("show", help="print one journal entry as JSON, its data included")
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument("--config", default=None, help=config_help)
    show.set_defaults(handler=show_event)
    retry = sub.add_parser("retry", help="deliver dead events again")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("event_ids", nargs="*", default=[], metavar="EVENT_ID", help="event ids")
    which.add_argument("--all", action="store_true", help="retry every dead event")
    retry.add_argument("--config", default=None, help=config_help)
    retry.set_defaults(handler=retry_events)


def list_events(args: argparse.Namespace) -> int:
    """Print the dead events."""
    found: list[JournalEntry] = on_store(args.config, lambda parts: parts.journal.dead(), [])
    for entry in found:
        row = {
            "event_id": entry.event_id,
            "event_type": entry.event.event_type,
            "source": entry.event.source,
            "attempts": entry.attempts,
            "created": iso(entry.event.created_at),
            "error": entry.last_error,
        }
        if args.json:
            print(json.dumps(row))
        else:
            print(
                f"{entry.event_id}  {row['event_type']}  from {row['source']}  created "
                f"{row['created']}  attempts={entry.attempts}  {entry.last_error}"
            )
    if not found and not args.json:
        print("no dead events")
    return 0


def show_event(args: argparse.Namespace) -> int:
    """Print one journal entry."""
    entry = on_store(args.config, lambda parts: parts.journal.get(args.event_id), None)
    if entry is None:
        raise IntentdError(
            f"the journal has no event {args.event_id!r}; list dead events with "
            "'intentd events list' (done events are kept for journal.retention seconds)"
        )
    print(json.dumps(entry.to_dict(), indent=2, default=str))
    return 0


def retry_events(args: argparse.Namespace) -> int:
    """Make the chosen dead events pending again."""
    ids = None if args.all else args.event_ids
    retried = on_store(args.config, lambda parts: parts.journal.retry(ids, time.time()), None)
    if retried is None:
        raise IntentdError("the store does not exist yet, so there are no dead events to retry")
    missing = sorted(set(args.event_ids) - set(retried))
    if missing:
        print(
            f"intentd: no dead event has id {', '.join(missing)}; "
            "list them with 'intentd events list'",
            file=sys.stderr,
        )
    if retried or not missing:
        print(
            f"re-queued {len(retried)} dead event(s)"
            + (f": {', '.join(retried)}" if retried else "")
        )
    return 1 if missing else 0
