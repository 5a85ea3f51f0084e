"""strands' providers with the request fixes real servers need.

Rules kept here:
- A request without tools carries no ``tools`` field (and no ``tool_choice``): vLLM and some hosted
  OpenAI-compatible APIs answer 400 to ``"tools": []``, and to ``tool_choice`` without tools. Every
  API below treats a missing ``tools`` as "no tools", so it is left out for all of them. (Ollama's
  own client always sends ``"tools": []``, which Ollama accepts; bedrock leaves ``toolConfig`` out
  by itself.)
- llamacpp: strands keeps only the parameters it knows; ``tool_choice`` from ``llm.params`` is sent
  with the tools (llama-cpp-python's server ignores tools without it).

Each class changes only how the request body is built; streaming, parsing and errors are strands'.
Importing this module imports no optional SDK; the factory asks for a class once its extra is
known to be installed.
"""

import functools
from typing import Any


def without_empty_tools(request: dict[str, Any]) -> dict[str, Any]:
    """Return ``request`` without ``tools`` (and ``tool_choice``) when it has no tools."""
    if not request.get("tools"):
        request.pop("tools", None)
        request.pop("tool_choice", None)
    return request


@functools.cache
def openai_model() -> type:
    """Return the OpenAI-compatible model class."""
    from strands.models.openai import OpenAIModel

    class OpenAIChat(OpenAIModel):
        def format_request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return without_empty_tools(super().format_request(*args, **kwargs))

    return OpenAIChat


@functools.cache
def litellm_model() -> type:
    """Return the LiteLLM model class."""
    from strands.models.litellm import LiteLLMModel

    class LiteLLMChat(LiteLLMModel):
        def format_request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return without_empty_tools(super().format_request(*args, **kwargs))

    return LiteLLMChat


@functools.cache
def anthropic_model() -> type:
    """Return the Anthropic Messages model class."""
    from strands.models.anthropic import AnthropicModel

    class AnthropicChat(AnthropicModel):
        def format_request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return without_empty_tools(super().format_request(*args, **kwargs))

    return AnthropicChat


@functools.cache
def llamacpp_model() -> type:
    """Return the llama.cpp model class."""
    from strands.models.llamacpp import LlamaCppModel

    class LlamaCppChat(LlamaCppModel):
        # strands builds the llama.cpp body in a private method; tests against the fake pin it.
        def _format_request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            request = super()._format_request(*args, **kwargs)
            params = self.config.get("params")
            choice = params.get("tool_choice") if isinstance(params, dict) else None
            if request.get("tools") and choice is not None:
                request["tool_choice"] = choice
            return without_empty_tools(request)

    return LlamaCppChat
