"""ROLE_CONFIG as a pydantic model: unknown keys forbidden, no coercion, one message per error."""

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.events import check_event_type

ROLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"


class ParameterSpec(BaseModel):
    """One parameter the role's workflows accept (shown to the router and the model)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["string", "integer", "number", "boolean", "array", "object"]
    description: Annotated[str, Field(min_length=1)]
    required: bool = False
    enum: list[Any] | None = None
    examples: list[Any] | None = None


class RoleConfig(BaseModel):
    """The ROLE_CONFIG dict of a role file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(pattern=rf"^{ROLE_NAME.pattern}$")]
    version: Annotated[str, Field(pattern=SEMVER)]
    description: Annotated[str, Field(min_length=1)]
    llm_type: Literal["WEAK", "DEFAULT", "STRONG"]
    fast_reply: bool = False
    when_to_use: str | None = None
    parameters: dict[str, ParameterSpec] = {}
    system_prompt: str | None = None
    external_events: list[str] = []  # events posted from outside (POST /events, intentd emit)

    @field_validator("external_events")
    @classmethod
    def _event_names(cls, names: list[str]) -> list[str]:
        for name in names:
            check_event_type(name, "event")
        return names


_CONFIG_HINTS = {
    "name": "use the file name without '.py', in lowercase snake_case",
    "version": "use a semantic version such as '1.0.0'",
    "llm_type": "use one of 'WEAK', 'DEFAULT', 'STRONG'",
    "description": "describe in one sentence what the role does",
    "fast_reply": "use True or False",
}


def suggest_role_name(text: str) -> str:
    """Return a lowercase snake_case role name close to ``text``."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "my_role"


def config_problems(config: dict[str, Any]) -> list[str]:
    """Return what is wrong with a ROLE_CONFIG dict, one sentence per problem."""
    try:
        RoleConfig.model_validate(config)
    except ValidationError as err:
        return [_message(item) for item in err.errors()]
    return []


def _message(item: Any) -> str:
    loc = item["loc"]
    key = "".join(f"[{part!r}]" for part in loc)
    parent = "ROLE_CONFIG" + "".join(f"[{part!r}]" for part in loc[:-1])
    if item["type"] == "missing":
        return f"{parent} lacks required key {loc[-1]!r}; add it"
    if item["type"] == "extra_forbidden":
        model = RoleConfig if len(loc) == 1 else ParameterSpec
        return f"{parent} has unknown key {loc[-1]!r}; remove it or use one of " + ", ".join(
            model.model_fields
        )
    hint = _CONFIG_HINTS.get(str(loc[0])) if len(loc) == 1 else None
    why = hint or item["msg"].removeprefix("Value error, ")
    return f"ROLE_CONFIG{key} is {item.get('input')!r:.60}; {why}"
