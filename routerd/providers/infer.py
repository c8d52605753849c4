"""Splitting ``provider/model`` strings, and inferring the provider of a bare model name.

Used by the config compiler (``litellm_params.model``), wildcard groups and the SDK, so that
``gpt-4o``, ``openai/gpt-4o`` and ``ft:gpt-4o-mini:org:suffix:id`` resolve the same way everywhere.
"""

from __future__ import annotations

import re

# Every provider prefix routerd accepts, with the adapter that serves it. Kept here (not only in the
# adapter registry) so config validation can name unknown prefixes without importing every adapter.
PROVIDER_PREFIXES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "text-completion-openai",
    "custom_openai": "openai",
    "azure": "azure",
    "azure_text": "azure_text",
    "mock": "mock",
    "hosted_vllm": "hosted_vllm",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai": "vertex_ai",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together_ai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "xai": "xai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "lm_studio": "lm_studio",
}

_OPENAI_BARE = re.compile(
    r"^(gpt-|chatgpt-|o1|o3|o4|text-embedding-|text-davinci|davinci|babbage|omni-moderation|ft:|dall-e|whisper|tts-)"
)
_OPENAI_TEXT = re.compile(r"^(gpt-3\.5-turbo-instruct|text-davinci-|davinci-002|babbage-002)")


def infer_provider(model: str) -> str | None:
    """The provider of a bare model name, or None when it cannot be told."""
    if _OPENAI_TEXT.match(model):
        return "text-completion-openai"
    if _OPENAI_BARE.match(model):
        return "openai"
    if model.startswith("claude-") or model.startswith("claude"):
        return "anthropic"
    if model.startswith("gemini-"):
        return "gemini"
    return None


def split_model(model: str) -> tuple[str | None, str]:
    """``"azure/my-deploy"`` -> ``("azure", "my-deploy")``; ``"gpt-4o"`` -> ``("openai", "gpt-4o")``.

    The provider is None when the prefix is unknown and the bare name cannot be inferred; the
    caller reports that. A prefix that is not a provider (``meta-llama/Llama-3``) is kept in the
    model name.
    """
    prefix, sep, rest = model.partition("/")
    if sep and prefix in PROVIDER_PREFIXES:
        return PROVIDER_PREFIXES[prefix], rest
    return infer_provider(model), model


def known_prefixes() -> list[str]:
    return sorted(PROVIDER_PREFIXES)
