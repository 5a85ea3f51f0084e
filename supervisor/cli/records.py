"""``intentd timers list``, ``audit tail`` and ``kv``: read the store, with or without a daemon."""

import argparse
import json
from typing import Any

from common.audit import AuditRecord
from common.clock import utc_iso
from common.errors import IntentdError
from supervisor.cli._config import on_store
from supervisor.store.base import Timer
from supervisor.store.kv import KVStore


def add_commands(commands: Any, config_help: str) -> None:
    """Add the ``timers`` and ``audit`` subcommands to the CLI's subparsers."""
    timer_parser = commands.add_parser("timers", help="inspect stored timers")
    timer_commands = timer_parser.add_subparsers(
        dest="timers_command", metavar="COMMAND", required=True
    )
    listing = timer_commands.add_parser("list", help="list pending timers by deadline")
    listing.add_argument("--all", action="store_true", help="include fired and cancelled timers")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.add_argument("--config", default=None, help=config_help)
    listing.set_defaults(handler=list_timers)

    audit_parser = commands.add_parser("audit", help="inspect the audit log")
    audit_commands = audit_parser.add_subparsers(
        dest="audit_command", metavar="COMMAND", required=True
    )
    tail = audit_commands.add_parser("tail", help="print the latest audit records, oldest first")
    tail.add_argument("-n", type=record_count, default=20, help="how many records (default 20)")
    tail.add_argument("--action", default=None, help="only records of this action")
    tail.add_argument("--json", action="store_true", help="print JSON lines")
    tail.add_argument("--config", default=None, help=config_help)
    tail.set_defaults(handler=tail_audit)

    kv = commands.add_parser("kv", help="print a role's key-value store, or one key's value")
    kv.add_argument("role", metavar="ROLE", help="the role's name")
    kv.add_argument("key", metavar="KEY", nargs="?", help="one key (default: every key)")
    kv.add_argument("--config", default=None, help=config_help)
    kv.set_defaults(handler=show_kv)


def show_kv(args: argparse.Namespace) -> int:
    """Print ROLE's keys with their JSON values, or the value of KEY."""
    values: dict[str, Any] = on_store(
        args.config, lambda parts: _read_kv(KVStore(parts.kv), args.role), {}
    )
    if args.key is None:
        for key, value in values.items():
            print(f"{key}  {json.dumps(value)}")
        if not values:
            print(f"role {args.role!r} has no keys")
        return 0
    if args.key not in values:
        raise IntentdError(
            f"role {args.role!r} has no key {args.key!r}; its keys are {sorted(values)}"
        )
    print(json.dumps(values[args.key], indent=2))
    return 0


async def _read_kv(kv: KVStore, role: str) -> dict[str, Any]:
    role_kv = kv.for_role(role)
    return {key: await role_kv.get(key) for key in await role_kv.keys()}


def list_timers(args: argparse.Namespace) -> int:
    """Print the stored timers."""
    found: list[Timer] = on_store(
        args.config, lambda parts: parts.timers.query(include_done=args.all), []
    )
    for timer in found:
        data = timer.to_dict()
        if args.json:
            print(json.dumps(data))
            continue
        fired = f" fired {data['fired']}" if data["fired"] else ""
        who = " ".join(
            f"{k}={v}" for k, v in (("channel", timer.channel_id), ("user", timer.user_id)) if v
        )
        print(
            f"{timer.timer_id}  {timer.state:<9}  due {data['due']}{fired}  "
            f"{timer.label!r}  {who}".rstrip()
        )
    if not found and not args.json:
        print("no timers" if args.all else "no pending timers")
    return 0


def record_count(value: str) -> int:
    """Parse ``-n``: a whole number of records, 0 or more (SQLite reads -1 as "no limit")."""
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(
            f"-n must be a whole number of records, 0 or more; got {value!r}"
        )
    return count


def tail_audit(args: argparse.Namespace) -> int:
    """Print the latest audit records."""
    records: list[AuditRecord] = on_store(
        args.config, lambda parts: parts.audit.tail(args.n, args.action), []
    )
    for record in records:
        row = {
            "created_at": utc_iso(record.created_at),
            "action": record.action,
            "role": record.role,
            "user_id": record.user_id,
            "details": record.details,
            "intent_id": record.intent_id,
            "parent_id": record.parent_id,
        }
        if args.json:
            print(json.dumps(row, default=str))
        else:
            print(
                f"{row['created_at']}  {record.action}  role={record.role} "
                f"user={record.user_id}  {json.dumps(record.details, default=str)}"
            )
    if not records and not args.json:
        print("no audit records")
    return 0
