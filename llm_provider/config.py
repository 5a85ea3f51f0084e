"""The ``llm:`` and ``router:`` sections of config.yaml, read by the model factory and engine."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Seconds = Annotated[float, Field(gt=0)]


class ConfigSection(BaseModel):
    """A config section: unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMConfig(ConfigSection):
    provider: Literal["none", "bedrock", "anthropic", "openai", "ollama", "llamacpp", "litellm"] = (
        "none"
    )
    base_url: str | None = None
    api_key: str | None = None
    models: dict[Literal["WEAK", "DEFAULT", "STRONG"], str] = {}
    params: dict[str, Any] = {}
    stream: bool = True
    max_concurrent: Annotated[int, Field(ge=1)] = 4
    timeout: Seconds = 120.0
    retry_attempts: Annotated[int, Field(ge=1)] = 3
    retry_delay: Annotated[float, Field(ge=0)] = 2.0


class RouterConfig(ConfigSection):
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.6
    default_role: str | None = None
