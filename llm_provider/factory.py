"""Turn config.yaml's ``llm`` section into strands models for WEAK, DEFAULT and STRONG.

Rules kept here:
- Models and their HTTP clients are built once, at start, and reused by every workflow run.
- A missing provider extra or missing credentials is a ConfigError at start that names what to
  install or set; ``provider: none`` builds no model (workflows then fail at once, saying how to
  configure one).
- A type without its own model id uses ``llm.models.DEFAULT``.
- openai: one long-lived ``openai.AsyncOpenAI`` client is shared by the three models. The openai
  client runs ``get_platform`` once in the loop's default executor (a third-party thread, started
  on the first request); strands would build a client, and pay that, on every request otherwise.
- ollama: strands opens an ``ollama.AsyncClient`` per request and never closes it, so keep-alive
  is turned off (no leaked sockets) and every request is bounded by ``llm.timeout``.
- llamacpp, anthropic: each model keeps an httpx client, closed with the others by
  ``Models.aclose()``.
- bedrock: boto3 is synchronous; strands runs its calls in worker threads (third-party threads).
- litellm: its cost map is read from the installed package, never fetched at import (the daemon
  does not reach the internet on its own); the clients it caches process-wide are closed by
  ``Models.aclose()``.
- ``llm.params`` reach the request body as the provider's API names them; ``llm.stream: false``
  asks for one JSON answer instead of a stream where the provider allows it (openai, litellm,
  bedrock) and is a ConfigError elsewhere. Requests without tools carry no ``tools`` field (see
  providers.py).
"""

import importlib
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from strands.models import Model

from common.errors import ConfigError
from llm_provider import providers
from llm_provider.config import LLMConfig

LLM_TYPES = ("WEAK", "DEFAULT", "STRONG")
_EXTRAS = {"openai": "openai", "ollama": "ollama", "anthropic": "anthropic", "litellm": "litellm"}
_KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_NON_STREAMING = ("openai", "litellm", "bedrock")


@dataclass
class Models:
    """The models of one provider by llm_type, and what must be closed at shutdown."""

    provider: str
    by_type: dict[str, Model] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    client: Any = None  # the openai client shared by the three models
    closed: bool = False

    def get(self, llm_type: str) -> Model | None:
        """Return the model for ``llm_type`` (None when no provider is configured)."""
        return self.by_type.get(llm_type)

    async def aclose(self) -> None:
        """Close the shared HTTP clients (once)."""
        if self.closed:
            return
        self.closed = True
        for close in self.closers:
            await close()


def build_models(config: LLMConfig, environ: Mapping[str, str] | None = None) -> Models:
    """Build one model per llm_type for ``config.provider``; raise ConfigError if it cannot."""
    env = os.environ if environ is None else environ
    models = Models(config.provider)
    if config.provider == "none":
        return models
    if not config.stream and config.provider not in _NON_STREAMING:
        raise ConfigError(
            f"llm.stream is false but provider {config.provider!r} always streams; remove "
            f"llm.stream (only {', '.join(_NON_STREAMING)} can answer without streaming)"
        )
    _require_extra(config.provider)
    builder = _BUILDERS[config.provider]
    built: dict[str, Model] = {}
    for llm_type in LLM_TYPES:
        model_id = _model_id(config, llm_type)
        if model_id not in built:
            built[model_id] = builder(config, model_id, env, models)
        models.by_type[llm_type] = built[model_id]
    return models


def _model_id(config: LLMConfig, llm_type: str) -> str:
    model_id = config.models.get(llm_type) or config.models.get("DEFAULT")  # type: ignore[call-overload]
    if not model_id:
        raise ConfigError(
            f"llm.models.DEFAULT is not set (nor llm.models.{llm_type}); set it to a model id "
            f"of provider {config.provider!r}, e.g. models: {{DEFAULT: <model id>}}"
        )
    return str(model_id)


def _require_extra(provider: str) -> None:
    package = _EXTRAS.get(provider)
    if package is None:
        return
    if provider == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        importlib.import_module(package)
    except ImportError as err:
        raise ConfigError(
            f"llm.provider is {provider!r} but the {package!r} package is not installed; "
            f"run pip install 'intentd[{provider}]'"
        ) from err


def _api_key(config: LLMConfig, env: Mapping[str, str], *, optional: bool = False) -> str | None:
    var = _KEY_VARS[config.provider]
    key = config.api_key or env.get(var)
    if not key and not optional:
        raise ConfigError(
            f"llm.provider is {config.provider!r} but no API key is set; set the {var} "
            "environment variable or llm.api_key (e.g. api_key: ${" + var + "})"
        )
    return key


def _openai(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    import openai

    if models.client is None:
        # A local OpenAI-compatible server (base_url) usually takes any key; the client needs one.
        key = _api_key(config, env, optional=config.base_url is not None) or "unused"
        models.client = openai.AsyncOpenAI(
            api_key=key, base_url=config.base_url, timeout=config.timeout, max_retries=0
        )
        models.closers.append(models.client.close)
    model: Model = providers.openai_model()(
        client=models.client, model_id=model_id, params=dict(config.params), stream=config.stream
    )
    return model


def _ollama(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    import httpx
    from strands.models.ollama import OllamaModel

    args = {"limits": httpx.Limits(max_keepalive_connections=0), "timeout": config.timeout}
    options = dict(config.params)
    max_tokens = options.pop("max_tokens", None)  # Ollama's own name is options.num_predict
    return OllamaModel(
        config.base_url or "http://127.0.0.1:11434",
        ollama_client_args=args,
        model_id=model_id,
        max_tokens=max_tokens,
        options=options or None,
    )


def _llamacpp(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    model = providers.llamacpp_model()(
        base_url=config.base_url or "http://127.0.0.1:8080",
        timeout=config.timeout,
        model_id=model_id,
        params=dict(config.params),
    )
    models.closers.append(model.client.aclose)  # its httpx client keeps connections open
    return model


def _anthropic(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    args: dict[str, Any] = {"api_key": _api_key(config, env), "timeout": config.timeout}
    if config.base_url:
        args["base_url"] = config.base_url
    params = dict(config.params)
    max_tokens = params.pop("max_tokens", 4096)
    model = providers.anthropic_model()(
        client_args=args, model_id=model_id, max_tokens=max_tokens, params=params
    )
    models.closers.append(model.client.close)  # its httpx client keeps connections open
    return model


def _litellm(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    args: dict[str, Any] = {
        k: v for k, v in (("api_key", config.api_key), ("api_base", config.base_url)) if v
    }
    args["timeout"] = config.timeout
    model: Model = providers.litellm_model()(
        client_args=args, model_id=model_id, params=dict(config.params), stream=config.stream
    )
    if _close_litellm not in models.closers:
        models.closers.append(_close_litellm)
    return model


async def _close_litellm() -> None:
    """Close the HTTP clients litellm caches process-wide, and forget them."""
    import litellm

    await litellm.close_litellm_async_clients()
    litellm.in_memory_llm_clients_cache.flush_cache()


def _bedrock(config: LLMConfig, model_id: str, env: Mapping[str, str], models: Models) -> Model:
    import boto3
    from strands.models.bedrock import BedrockModel

    if not config.api_key and boto3.Session().get_credentials() is None:
        raise ConfigError(
            "llm.provider is 'bedrock' but boto3 finds no AWS credentials; set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or a Bedrock llm.api_key"
        )
    extra: dict[str, Any] = {"endpoint_url": config.base_url} if config.base_url else {}
    if config.api_key:
        extra["api_key"] = config.api_key
    return BedrockModel(model_id=model_id, streaming=config.stream, **extra, **dict(config.params))


_BUILDERS: dict[str, Callable[[LLMConfig, str, Mapping[str, str], Models], Model]] = {
    "openai": _openai,
    "ollama": _ollama,
    "llamacpp": _llamacpp,
    "anthropic": _anthropic,
    "litellm": _litellm,
    "bedrock": _bedrock,
}
