"""When a guardrail runs (``mode:`` in the file), kept apart from the engine.

The routing file's models need :class:`Mode` to validate ``guardrails:``; a gateway without guardrails
imports only this, not the engine and the content filter behind it (start-up, docs/performance.md).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Mode"]


class Mode(StrEnum):
    PRE_CALL = "pre_call"
    POST_CALL = "post_call"
    DURING_CALL = "during_call"
    LOGGING_ONLY = "logging_only"
