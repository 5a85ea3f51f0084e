"""Run a role's tool and carry out the intent it returns before anyone reads the reply.

A tool returns ``{"success", "message"[, "intent"]}``. The intent is carried out here, with the
IntentProcessor, and the reply handed back describes what really happened: the intent handler's
result (its ``message`` if it has one) or its error. A tool never tells the model "will be done".
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from common.errors import UnknownToolError
from common.intent_processor import IntentProcessor
from common.intents import Intent
from llm_provider.role_contract import LoadedRole

_INHERITED = ("channel_id", "user_id")


def find_tool(roles: Mapping[str, LoadedRole], role_name: str, tool_name: str) -> Any:
    """Return the tool ``tool_name`` of the loaded role ``role_name``; raise UnknownToolError."""
    role = roles.get(role_name)
    if role is None:
        raise UnknownToolError(
            f"no loaded role is named {role_name!r}; the roles are {sorted(roles)}"
        )
    tools = {getattr(tool, "tool_name", ""): tool for tool in role.tools}
    if tool_name not in tools:
        raise UnknownToolError(
            f"role {role_name!r} has no tool {tool_name!r}; its tools are {sorted(tools)}"
        )
    return tools[tool_name]


async def run_tool(
    tool: Any,
    arguments: dict[str, Any],
    processor: IntentProcessor,
    role: str,
    origin: dict[str, Any],
) -> dict[str, Any]:
    """Call ``tool(**arguments)``, carry out its intent, and return the truthful reply."""
    name = getattr(tool, "tool_name", getattr(tool, "__name__", repr(tool)))
    function = getattr(tool, "__wrapped__", tool)
    try:
        reply = _validating(function)(**arguments)
        if inspect.isawaitable(reply):
            reply = await reply
    except pydantic.ValidationError as err:
        if err.title != getattr(function, "__name__", None):  # raised inside the tool
            return {"success": False, "message": f"tool {name!r} raised {err}"}
        return {
            "success": False,
            "message": f"tool {name!r} got invalid arguments: "
            + "; ".join(_describe(item) for item in err.errors()),
        }
    except Exception as err:
        return {"success": False, "message": f"tool {name!r} raised {type(err).__name__}: {err}"}
    if not isinstance(reply, dict) or "success" not in reply or "message" not in reply:
        return {
            "success": False,
            "message": f"tool {name!r} returned {reply!r:.80}; expected a dict with "
            "'success' and 'message'",
        }
    intent = reply.get("intent")
    answer = {key: value for key, value in reply.items() if key != "intent"}
    if intent is None:
        return answer
    if isinstance(intent, Intent):
        _inherit_origin(intent, origin)
    outcome = await processor.carry_out(intent, role=role)
    if not outcome.ok:
        return {"success": False, "message": outcome.error, "error": outcome.error}
    result = outcome.result
    message = result.get("message") if isinstance(result, dict) else None
    return {**answer, "success": True, "message": message or answer["message"], "result": result}


def _inherit_origin(intent: Intent, origin: dict[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(intent)}
    for key in _INHERITED:
        if key in names and not getattr(intent, key) and origin.get(key):
            setattr(intent, key, origin[key])
    if intent.parent_id is None:
        intent.parent_id = origin.get("event_id") or origin.get("parent_id")


@functools.lru_cache(maxsize=512)
def _validating(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``function`` checking its arguments against its type hints (as strands does)."""
    return pydantic.validate_call(function)


def _describe(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "arguments"
    if item["type"].startswith("missing"):
        return f"{where}: {item['msg']}"
    return f"{where}: {item['msg']} (got {item.get('input')!r:.60})"
