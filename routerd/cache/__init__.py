"""Response caching: exact-match keys, LiteLLM's per-request controls, a bounded local LRU store.

Pure parts (keys, controls, stream replay) are separate from the stores, so each is tested alone.
"""
