"""routerd's Python SDK: ``completion()`` and friends and ``Router``, on the daemon's routing core.

``routerd`` re-exports everything in ``__all__``; import from ``routerd`` (``routerd.completion``).
Exceptions are :mod:`routerd.errors` classes, raised as their SDK classes (which also subclass
``openai``'s; :mod:`routerd.sdk.errors`) and exported by ``routerd`` itself.
"""

from __future__ import annotations

from routerd.sdk.extra import (
    aimage_generation,
    amoderation,
    arerank,
    aresponses,
    batch_completion,
    completion_with_retries,
    image_generation,
    moderation,
    rerank,
    responses,
)
from routerd.sdk.helpers import completion_cost, cost_per_token, token_counter
from routerd.sdk.main import (
    acompletion,
    aembedding,
    atext_completion,
    completion,
    embedding,
    text_completion,
)
from routerd.sdk.router import Router
from routerd.sdk.streaming import (
    AsyncStreamWrapper,
    CustomStreamWrapper,
    SyncStreamWrapper,
    stream_chunk_builder,
)
from routerd.sdk.types import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Embedding,
    EmbeddingResponse,
    Function,
    FunctionCall,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    TextChoices,
    TextCompletionResponse,
    Usage,
)

__all__ = [
    "AsyncStreamWrapper",
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "CustomStreamWrapper",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "FunctionCall",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "Router",
    "StreamingChoices",
    "SyncStreamWrapper",
    "TextChoices",
    "TextCompletionResponse",
    "Usage",
    "acompletion",
    "aembedding",
    "aimage_generation",
    "amoderation",
    "arerank",
    "aresponses",
    "atext_completion",
    "batch_completion",
    "completion",
    "completion_cost",
    "completion_with_retries",
    "cost_per_token",
    "embedding",
    "image_generation",
    "moderation",
    "rerank",
    "responses",
    "stream_chunk_builder",
    "text_completion",
    "token_counter",
]
