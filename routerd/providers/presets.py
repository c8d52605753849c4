"""OpenAI-compatible hosted APIs that only differ by base URL and key variable: one table entry each.

Every preset is an :class:`~routerd.providers.openai.OpenAIAdapter` with its own default base URL;
the key comes from ``api_key`` or the variable in :data:`routerd.providers.infer.DEFAULT_API_KEY_ENV`
and is sent as ``Authorization: Bearer <key>``. ``api_base`` in ``litellm_params`` always wins.

Two presets take more than a URL:

* ``cloudflare/``: Workers AI puts the account id in the URL
  (``https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1``). The id comes from
  ``litellm_params.account_id``, else ``CLOUDFLARE_ACCOUNT_ID``; without one the deployment is a
  config error (unless ``api_base`` is given).
* ``custom/``: any OpenAI-compatible server; ``api_base`` is required (``custom_openai/`` is the
  OpenAI adapter's alias and defaults to OpenAI's URL).
"""

from __future__ import annotations

import os
from typing import ClassVar

from routerd.config.table import Deployment
from routerd.errors import ConfigError
from routerd.providers.base import register
from routerd.providers.openai import OpenAIAdapter

__all__ = ["CLOUDFLARE_ACCOUNT_ENV", "PRESETS", "CloudflareAdapter", "preset_adapter"]

#: provider -> default base URL (each checked against the provider's own documentation)
PRESETS: dict[str, str] = {
    "cerebras": "https://api.cerebras.ai/v1",
    "github": "https://models.github.ai/inference",
    "nvidia_nim": "https://integrate.api.nvidia.com/v1",
    "sambanova": "https://api.sambanova.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "novita": "https://api.novita.ai/v3/openai",
    "nebius": "https://api.tokenfactory.nebius.com/v1",
    "hyperbolic": "https://api.hyperbolic.xyz/v1",
    "lambda_ai": "https://api.lambda.ai/v1",
    "zai": "https://api.z.ai/api/paas/v4",
    "dashscope": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    "moonshot": "https://api.moonshot.ai/v1",
    "featherless_ai": "https://api.featherless.ai/v1",
}
#: other prefixes LiteLLM files use for the same presets
PRESET_ALIASES: dict[str, tuple[str, ...]] = {"lambda_ai": ("lambda",), "featherless_ai": ("featherless",)}

CLOUDFLARE_BASE = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"
CLOUDFLARE_ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"


def preset_adapter(provider: str, base: str) -> OpenAIAdapter:
    """An OpenAI adapter named ``provider`` whose default base URL is ``base``."""
    attributes = {
        "name": provider,
        "default_api_base": base,
        "__doc__": f"``{provider}/``: the OpenAI-compatible API at {base}.",
    }
    adapter: OpenAIAdapter = type(f"PresetAdapter_{provider}", (OpenAIAdapter,), attributes)()
    return adapter


class CloudflareAdapter(OpenAIAdapter):
    """``cloudflare/``: Workers AI's OpenAI-compatible endpoints, account id in the URL."""

    name = "cloudflare"
    default_api_base: ClassVar[str | None] = CLOUDFLARE_BASE

    def api_base(self, deployment: Deployment) -> str:
        if deployment.api_base:
            return super().api_base(deployment)
        template = self.default_api_base or CLOUDFLARE_BASE
        account = deployment.extra.get("account_id") or os.environ.get(CLOUDFLARE_ACCOUNT_ENV)
        if not isinstance(account, str) or not account.strip():
            raise ConfigError(
                [
                    f"deployment {deployment.id} ({deployment.litellm_model}): cloudflare needs an "
                    f"account id (litellm_params.account_id or {CLOUDFLARE_ACCOUNT_ENV}) or an api_base"
                ]
            )
        return template.format(account_id=account.strip()).rstrip("/")


class CustomAdapter(OpenAIAdapter):
    """``custom/``: an OpenAI-compatible server at the deployment's ``api_base`` (required)."""

    name = "custom"
    default_api_base: ClassVar[str | None] = None


for _provider, _base in PRESETS.items():
    register(preset_adapter(_provider, _base), *PRESET_ALIASES.get(_provider, ()))
register(CloudflareAdapter())
register(CustomAdapter())
