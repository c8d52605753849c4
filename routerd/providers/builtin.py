"""Imports every built-in adapter module so each registers itself (see base.register)."""

from __future__ import annotations

import routerd.providers.anthropic
import routerd.providers.azure
import routerd.providers.bedrock
import routerd.providers.cohere
import routerd.providers.gemini
import routerd.providers.mock
import routerd.providers.openai
import routerd.providers.presets
import routerd.providers.sagemaker
import routerd.providers.vertex  # noqa: F401
