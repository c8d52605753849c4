"""LiteLLM's ``litellm.types`` import paths (``routerd.types.utils``) for porting code."""
