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
    # OpenAI-compatible presets (routerd.providers.presets)
    "cerebras": "cerebras",
    "github": "github",
    "nvidia_nim": "nvidia_nim",
    "cloudflare": "cloudflare",
    "sambanova": "sambanova",
    "deepinfra": "deepinfra",
    "novita": "novita",
    "nebius": "nebius",
    "hyperbolic": "hyperbolic",
    "lambda_ai": "lambda_ai",
    "lambda": "lambda_ai",
    "zai": "zai",
    "dashscope": "dashscope",
    "moonshot": "moonshot",
    "featherless_ai": "featherless_ai",
    "featherless": "featherless_ai",
    "custom": "custom",
    # AWS (routerd.providers.bedrock, routerd.providers.sagemaker) and Cohere
    "bedrock": "bedrock",
    "sagemaker": "sagemaker",
    "sagemaker_chat": "sagemaker_chat",
    "cohere": "cohere",
    "cohere_chat": "cohere",
}

# Environment variables a deployment falls back to when its api_key / api_base is not in the file.
DEFAULT_API_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "text-completion-openai": "OPENAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "azure_text": "AZURE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "hosted_vllm": "HOSTED_VLLM_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY",
    "xai": "XAI_API_KEY",
    "lm_studio": "LM_STUDIO_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
    "github": "GITHUB_API_KEY",
    "nvidia_nim": "NVIDIA_NIM_API_KEY",
    "cloudflare": "CLOUDFLARE_API_KEY",
    "sambanova": "SAMBANOVA_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "novita": "NOVITA_API_KEY",
    "nebius": "NEBIUS_API_KEY",
    "hyperbolic": "HYPERBOLIC_API_KEY",
    "lambda_ai": "LAMBDA_API_KEY",
    "zai": "ZAI_API_KEY",
    "dashscope": "DASHSCOPE_API_KEY",
    "moonshot": "MOONSHOT_API_KEY",
    "featherless_ai": "FEATHERLESS_AI_API_KEY",
    "cohere": "COHERE_API_KEY",
}
DEFAULT_API_BASE_ENV: dict[str, str] = {
    "openai": "OPENAI_API_BASE",
    "text-completion-openai": "OPENAI_API_BASE",
    "azure": "AZURE_API_BASE",
    "azure_text": "AZURE_API_BASE",
    "anthropic": "ANTHROPIC_API_BASE",
    "hosted_vllm": "HOSTED_VLLM_API_BASE",
    "ollama": "OLLAMA_API_BASE",
    "lm_studio": "LM_STUDIO_API_BASE",
    "cohere": "COHERE_API_BASE",
}
DEFAULT_API_VERSION_ENV: dict[str, str] = {"azure": "AZURE_API_VERSION", "azure_text": "AZURE_API_VERSION"}

# OpenAI's bare model names, as LiteLLM infers them without a prefix: the gpt-* families (gpt-4o, gpt-4.1*,
# gpt-5*, gpt-image-*), chatgpt-4o-latest, the reasoning families (o1, o3, o4-mini and their dated /
# -pro / -mini variants, but not just any name starting "o1"), codex-* (codex-mini-latest),
# computer-use-preview, embeddings, moderation, fine-tunes and the legacy completion models. Audio and
# image names (whisper, tts-, dall-e, gpt-image) are recognised too; the config then warns that routerd
# does not serve them (config.keys.AUDIO_IMAGE_MODEL_PREFIXES).
_OPENAI_BARE = re.compile(
    r"^(?:gpt-|chatgpt-|o[134](?:$|-)|codex-|computer-use-preview|text-embedding-|text-moderation-"
    r"|text-davinci|davinci|babbage|omni-moderation|ft:|dall-e|whisper|tts-)"
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
