"""The response types under LiteLLM's ``litellm.types.utils`` path (they are :mod:`routerd.sdk.types`)."""

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
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "FunctionCall",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "TextChoices",
    "TextCompletionResponse",
    "Usage",
]
