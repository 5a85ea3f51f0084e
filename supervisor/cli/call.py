"""``intentd call ROLE.TOOL key=value ...``: run one role tool, with its intent carried out.

No model and no running daemon are needed: the roles are loaded from the roles folder, the store
from ``storage.path``, and the parts are wired by ``build_runtime``, the function the daemon uses,
so the tool's intent is carried out as in the daemon. A timer created this way is in the store; a
running daemon arms it on its next fast heartbeat (the timer service's store check). Events the
intent publishes are not delivered without the daemon.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from common.clock import Clock, SystemClock
from common.errors import IntentdError
from common.message_bus import MessageBus
from llm_provider.tool_runner import find_tool, run_tool
from supervisor.config import Config
from supervisor.logs import configure_logging
from supervisor.runtime import build_runtime, instance_name
from supervisor.store.backends import open_parts


def add_call_command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    config_loader: Callable[[str | None], Config],
) -> None:
    """Add ``intentd call``; ``config_loader(--config)`` reads the config."""
    call = commands.add_parser(
        "call", help="run one role tool and carry out its intent, without a model or daemon"
    )
    call.add_argument("target", metavar="ROLE.TOOL", help="e.g. timer.set_timer")
    call.add_argument(
        "arguments", nargs="*", metavar="KEY=VALUE",
        help="tool arguments; numbers, true/false and JSON are parsed unless the tool wants text",
    )  # fmt: skip
    call.add_argument("--channel", default=None, help="channel the intent acts for (e.g. #ops)")
    call.add_argument("--user", default=None, help="user the intent acts for")
    call.add_argument("--json", action="store_true", help="print the reply as JSON")
    call.add_argument("--config", default=None, help="config file naming roles and store")
    call.set_defaults(handler=call_command, load_config=config_loader)


def call_command(args: argparse.Namespace) -> int:
    """Run the tool; print its reply; return 0 on success, 1 otherwise."""
    configure_logging("CRITICAL", stream=sys.stderr)  # the reply says what happened
    config = args.load_config(args.config)
    origin = {"channel_id": args.channel, "user_id": args.user}
    reply = asyncio.run(call_tool(config, args.target, args.arguments, origin))
    if args.json:
        print(json.dumps(reply, default=str, indent=2))
    else:
        print(reply["message"])
    return 0 if reply["success"] else 1


async def call_tool(
    config: Config,
    target: str,
    pairs: list[str],
    origin: dict[str, Any],
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Run ``ROLE.TOOL`` with ``key=value`` pairs against the configured store; return the reply."""
    role_name, dot, tool_name = target.partition(".")
    if not dot:
        raise IntentdError(f"call target {target!r} is not ROLE.TOOL; write e.g. timer.set_timer")
    parts = await open_parts(config.storage, config.resolve, instance_name(config))
    runtime = build_runtime(config, clock or SystemClock(), parts, MessageBus(), arms=False)
    try:
        tool = find_tool(runtime.load_roles(), role_name, tool_name)
        arguments = parse_arguments(pairs, tool.tool_spec["inputSchema"].get("json", {}))
        return await run_tool(tool, arguments, runtime.processor, role_name, origin)
    finally:
        await runtime.close()


def parse_arguments(pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """Turn ``key=value`` pairs into arguments: text where the tool wants text, else JSON."""
    properties = schema.get("properties", {})
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise IntentdError(f"tool argument {pair!r} is not key=value; write e.g. duration=5m")
        if properties.get(key, {}).get("type") == "string":
            arguments[key] = raw
            continue
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments
