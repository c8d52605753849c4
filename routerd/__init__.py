"""routerd: a declarative, config-driven LLM router daemon and SDK speaking the OpenAI API.

Every public name is imported on first use (PEP 562), so ``import routerd`` costs almost nothing and
the daemon and ``routerd check`` never load the SDK, the fine-tuning helpers or the ``openai``
package. The exceptions exported here are the SDK's: :mod:`routerd.errors` classes that also subclass
``openai``'s (see :mod:`routerd.sdk.errors`); ``routerd.errors.<Name>`` is the core class, a parent of
``routerd.<Name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from routerd.errors import (
        APIConnectionError,
        APIError,
        AuthenticationError,
        BadGatewayError,
        BadRequestError,
        ConfigError,
        ContentPolicyViolationError,
        ContextWindowExceededError,
        InternalServerError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        RequestTooLargeError,
        RouterdError,
        ServiceUnavailableError,
        Timeout,
        UnprocessableEntityError,
        UnsupportedParamsError,
    )
    from routerd.finetune import (
        InvalidTrainingFileError,
        Page,
        acancel_fine_tuning_job,
        acreate_file,
        acreate_fine_tuning_job,
        afile_content,
        afile_delete,
        afile_list,
        afile_retrieve,
        alist_fine_tuning_checkpoints,
        alist_fine_tuning_events,
        alist_fine_tuning_jobs,
        aretrieve_fine_tuning_job,
        cancel_fine_tuning_job,
        create_file,
        create_fine_tuning_job,
        file_content,
        file_delete,
        file_list,
        file_retrieve,
        list_fine_tuning_checkpoints,
        list_fine_tuning_events,
        list_fine_tuning_jobs,
        retrieve_fine_tuning_job,
    )
    from routerd.sdk import (
        AsyncStreamWrapper,
        ChatCompletionDeltaToolCall,
        ChatCompletionMessageToolCall,
        Choices,
        CustomStreamWrapper,
        Delta,
        Embedding,
        EmbeddingResponse,
        Function,
        FunctionCall,
        Message,
        ModelResponse,
        ModelResponseStream,
        Router,
        StreamingChoices,
        SyncStreamWrapper,
        TextChoices,
        TextCompletionResponse,
        Usage,
        acompletion,
        aembedding,
        atext_completion,
        completion,
        completion_cost,
        cost_per_token,
        embedding,
        stream_chunk_builder,
        text_completion,
        token_counter,
    )

# public name -> the module it lives in
_LAZY: dict[str, str] = {
    "APIConnectionError": "routerd.errors",
    "APIError": "routerd.errors",
    "AuthenticationError": "routerd.errors",
    "BadGatewayError": "routerd.errors",
    "BadRequestError": "routerd.errors",
    "ConfigError": "routerd.errors",
    "ContentPolicyViolationError": "routerd.errors",
    "ContextWindowExceededError": "routerd.errors",
    "InternalServerError": "routerd.errors",
    "NotFoundError": "routerd.errors",
    "PermissionDeniedError": "routerd.errors",
    "RateLimitError": "routerd.errors",
    "RequestTooLargeError": "routerd.errors",
    "RouterdError": "routerd.errors",
    "ServiceUnavailableError": "routerd.errors",
    "Timeout": "routerd.errors",
    "UnprocessableEntityError": "routerd.errors",
    "UnsupportedParamsError": "routerd.errors",
    "InvalidTrainingFileError": "routerd.finetune",
    "Page": "routerd.finetune",
    "acancel_fine_tuning_job": "routerd.finetune",
    "acreate_file": "routerd.finetune",
    "acreate_fine_tuning_job": "routerd.finetune",
    "afile_content": "routerd.finetune",
    "afile_delete": "routerd.finetune",
    "afile_list": "routerd.finetune",
    "afile_retrieve": "routerd.finetune",
    "alist_fine_tuning_checkpoints": "routerd.finetune",
    "alist_fine_tuning_events": "routerd.finetune",
    "alist_fine_tuning_jobs": "routerd.finetune",
    "aretrieve_fine_tuning_job": "routerd.finetune",
    "cancel_fine_tuning_job": "routerd.finetune",
    "create_file": "routerd.finetune",
    "create_fine_tuning_job": "routerd.finetune",
    "file_content": "routerd.finetune",
    "file_delete": "routerd.finetune",
    "file_list": "routerd.finetune",
    "file_retrieve": "routerd.finetune",
    "list_fine_tuning_checkpoints": "routerd.finetune",
    "list_fine_tuning_events": "routerd.finetune",
    "list_fine_tuning_jobs": "routerd.finetune",
    "retrieve_fine_tuning_job": "routerd.finetune",
    "AsyncStreamWrapper": "routerd.sdk",
    "ChatCompletionDeltaToolCall": "routerd.sdk",
    "ChatCompletionMessageToolCall": "routerd.sdk",
    "Choices": "routerd.sdk",
    "CustomStreamWrapper": "routerd.sdk",
    "Delta": "routerd.sdk",
    "Embedding": "routerd.sdk",
    "EmbeddingResponse": "routerd.sdk",
    "Function": "routerd.sdk",
    "FunctionCall": "routerd.sdk",
    "Message": "routerd.sdk",
    "ModelResponse": "routerd.sdk",
    "ModelResponseStream": "routerd.sdk",
    "Router": "routerd.sdk",
    "StreamingChoices": "routerd.sdk",
    "SyncStreamWrapper": "routerd.sdk",
    "TextChoices": "routerd.sdk",
    "TextCompletionResponse": "routerd.sdk",
    "Usage": "routerd.sdk",
    "acompletion": "routerd.sdk",
    "aembedding": "routerd.sdk",
    "atext_completion": "routerd.sdk",
    "completion": "routerd.sdk",
    "completion_cost": "routerd.sdk",
    "cost_per_token": "routerd.sdk",
    "embedding": "routerd.sdk",
    "stream_chunk_builder": "routerd.sdk",
    "text_completion": "routerd.sdk",
    "token_counter": "routerd.sdk",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'routerd' has no attribute {name!r}")
    import importlib

    if module_name == "routerd.errors":
        from routerd.sdk.errors import exported

        value: Any = exported(name)
    else:
        value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncStreamWrapper",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "ConfigError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "CustomStreamWrapper",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "FunctionCall",
    "InternalServerError",
    "InvalidTrainingFileError",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "Router",
    "RouterdError",
    "ServiceUnavailableError",
    "StreamingChoices",
    "SyncStreamWrapper",
    "TextChoices",
    "TextCompletionResponse",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "__version__",
    "acancel_fine_tuning_job",
    "acompletion",
    "acreate_file",
    "acreate_fine_tuning_job",
    "aembedding",
    "afile_content",
    "afile_delete",
    "afile_list",
    "afile_retrieve",
    "alist_fine_tuning_checkpoints",
    "alist_fine_tuning_events",
    "alist_fine_tuning_jobs",
    "aretrieve_fine_tuning_job",
    "atext_completion",
    "cancel_fine_tuning_job",
    "completion",
    "completion_cost",
    "cost_per_token",
    "create_file",
    "create_fine_tuning_job",
    "embedding",
    "file_content",
    "file_delete",
    "file_list",
    "file_retrieve",
    "list_fine_tuning_checkpoints",
    "list_fine_tuning_events",
    "list_fine_tuning_jobs",
    "retrieve_fine_tuning_job",
    "stream_chunk_builder",
    "text_completion",
    "token_counter",
]

# LiteLLM's helper names and module-level settings (routerd.api_key = ..., routerd.success_callback =
# [fn]), read at call time by the SDK (routerd/sdk/globals.py).
import sys as _sys

from routerd.sdk import (
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
from routerd.sdk.globals import install_defaults as _install_defaults
from routerd.utils import (
    get_llm_provider,
    get_model_info,
    get_supported_openai_params,
    model_cost,
    register_model,
    supports_function_calling,
    supports_parallel_function_calling,
    supports_prompt_caching,
    supports_reasoning,
    supports_response_schema,
    supports_system_messages,
    supports_tool_choice,
    supports_vision,
)

__all__ += [
    "aimage_generation",
    "amoderation",
    "arerank",
    "aresponses",
    "batch_completion",
    "completion_with_retries",
    "get_llm_provider",
    "get_model_info",
    "get_supported_openai_params",
    "image_generation",
    "model_cost",
    "moderation",
    "register_model",
    "rerank",
    "responses",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_prompt_caching",
    "supports_reasoning",
    "supports_response_schema",
    "supports_system_messages",
    "supports_tool_choice",
    "supports_vision",
]

_install_defaults(_sys.modules[__name__])
