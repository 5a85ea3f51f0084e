"""build_models: one model per llm_type from the llm section, clear errors when it cannot."""

import sys
import threading

import pytest
from strands.models.llamacpp import LlamaCppModel
from strands.models.ollama import OllamaModel
from strands.models.openai import OpenAIModel

from common.errors import ConfigError
from llm_provider.config import LLMConfig
from llm_provider.factory import build_models


def _llm(**fields: object) -> LLMConfig:
    return LLMConfig.model_validate(fields)


def test_provider_none_builds_no_model() -> None:
    models = build_models(_llm(provider="none"), environ={})
    assert (models.provider, models.by_type, models.get("WEAK")) == ("none", {}, None)


async def test_openai_models_share_one_client_and_fall_back_to_default() -> None:
    config = _llm(
        provider="openai",
        base_url="http://127.0.0.1:9/v1",
        models={"DEFAULT": "big", "WEAK": "small"},
    )
    models = build_models(config, environ={})
    weak, default, strong = (models.get(t) for t in ("WEAK", "DEFAULT", "STRONG"))
    assert isinstance(weak, OpenAIModel) and isinstance(default, OpenAIModel)
    assert (weak.get_config()["model_id"], default.get_config()["model_id"]) == ("small", "big")
    assert strong is default
    assert len(models.closers) == 1  # one AsyncOpenAI client, shared
    await models.aclose()


def test_openai_without_key_or_base_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="set the OPENAI_API_KEY environment variable"):
        build_models(_llm(provider="openai", models={"DEFAULT": "gpt-4o-mini"}), environ={})


def test_a_missing_extra_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if the extra were not installed
    config = _llm(provider="anthropic", models={"DEFAULT": "claude"})
    with pytest.raises(ConfigError, match=r"run pip install 'intentd\[anthropic\]'"):
        build_models(config, environ={"ANTHROPIC_API_KEY": "k"})


def test_a_missing_model_id_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"llm.models.DEFAULT is not set \(nor llm.models.WEAK\)"):
        build_models(_llm(provider="ollama", models={"STRONG": "x"}), environ={})


def test_ollama_and_llamacpp_models_are_built_without_a_thread() -> None:
    before = threading.active_count()
    ollama = build_models(_llm(provider="ollama", models={"DEFAULT": "llama3"}), environ={})
    llamacpp = build_models(_llm(provider="llamacpp", models={"DEFAULT": "q"}), environ={})
    assert isinstance(ollama.get("WEAK"), OllamaModel)
    assert isinstance(llamacpp.get("STRONG"), LlamaCppModel)
    assert (len(ollama.closers), len(llamacpp.closers)) == (0, 1)
    assert threading.active_count() == before


def test_bedrock_without_credentials_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    config = _llm(provider="bedrock", models={"DEFAULT": "anthropic.claude"})
    with pytest.raises(ConfigError, match="boto3 finds no AWS credentials; set AWS_ACCESS_KEY_ID"):
        build_models(config, environ={})
