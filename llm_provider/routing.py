"""Routing a user request to a role: the prompt for the WEAK model, its answer, and the choice.

Pure functions, testable without a model: ``router_prompt(roles)`` lists the loaded ``fast_reply``
roles with ``when_to_use`` and their ``parameters``; ``parse_route(text)`` reads the model's JSON
answer with pydantic; ``choose_route(...)`` applies the confidence threshold and the default role.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INSTRUCTIONS = """You route a user's request to the one role best able to handle it.
Answer with one JSON object and nothing else:
{"route": "<role name or none>", "confidence": <0.0 to 1.0>, "parameters": {<name>: <value>}}
Use "none" with a low confidence when no role fits. Fill parameters only from the request."""

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class RouteDecision(BaseModel):
    """The router model's answer."""

    model_config = ConfigDict(extra="ignore")

    route: str
    confidence: float = Field(ge=0, le=1)
    parameters: dict[str, Any] = {}


@dataclass(frozen=True)
class RouteChoice:
    """Where a request goes: a role (with parameters), or a reply saying it was not understood."""

    role: str | None
    parameters: dict[str, Any]
    reason: str


def routable(roles: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Return the ROLE_CONFIGs of the roles the router may choose (``fast_reply``), by name."""
    return {name: config for name, config in sorted(roles.items()) if config.get("fast_reply")}


def router_prompt(roles: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the router's system prompt for these ROLE_CONFIGs (non-fast_reply ones left out)."""
    lines = [INSTRUCTIONS, "", "Roles:"]
    for name, config in routable(roles).items():
        lines.append(f"- {name}: {config.get('when_to_use') or config.get('description', '')}")
        for param, spec in (config.get("parameters") or {}).items():
            required = " (required)" if spec.get("required") else ""
            lines.append(f"    {param} ({spec.get('type')}){required}: {spec.get('description')}")
    return "\n".join(lines)


def parse_route(text: str) -> RouteDecision | None:
    """Return the decision in the model's answer (fenced or with prose around it), or None."""
    match = _OBJECT.search(text or "")
    if match is None:
        return None
    try:
        return RouteDecision.model_validate(json.loads(match.group(0)))
    except (ValueError, ValidationError):
        return None


def choose_route(
    decision: RouteDecision | None,
    roles: Iterable[str],
    threshold: float,
    default_role: str | None,
) -> RouteChoice:
    """Return the role for ``decision``, or the default role, or no role with the reason why."""
    names = set(roles)
    if decision is None:
        reason = "the router's answer was not the expected JSON"
    elif decision.route not in names:
        reason = f"the router chose {decision.route!r}, which is not a role it may choose"
    elif decision.confidence < threshold:
        reason = (
            f"the router chose {decision.route!r} with confidence {decision.confidence}, "
            f"below router.confidence_threshold {threshold}"
        )
    else:
        return RouteChoice(decision.route, decision.parameters, "routed")
    if default_role is not None:
        return RouteChoice(default_role, {}, f"{reason}; using router.default_role")
    return RouteChoice(None, {}, reason)


def not_understood(request: str, roles: Iterable[str]) -> str:
    """Return the reply for a request no role was chosen for."""
    offer = ", ".join(sorted(roles)) or "nothing yet"
    return f"Sorry, I did not understand {request!r:.120}. I can help with: {offer}."
