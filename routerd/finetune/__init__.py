"""Files and fine-tuning jobs on OpenAI, Azure OpenAI and Vertex AI, in OpenAI's shapes.

The gateway serves them at ``/v1/files`` and ``/v1/fine_tuning/jobs`` (:mod:`routerd.server.files`,
:mod:`routerd.server.fine_tuning`); the functions below are the same operations for SDK users.
``__all__`` is what the top-level ``routerd`` package re-exports.

The names are imported on first use (PEP 562): the gateway imports :mod:`routerd.finetune.serving`
through this package, and must not pay for :mod:`routerd.finetune.sdk`, which loads ``openai``'s types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routerd.finetune.jsonl import InvalidTrainingFileError
    from routerd.finetune.sdk import (
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'routerd.finetune' has no attribute {name!r}")
    import importlib

    module = "routerd.finetune.jsonl" if name == "InvalidTrainingFileError" else "routerd.finetune.sdk"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "InvalidTrainingFileError",
    "Page",
    "acancel_fine_tuning_job",
    "acreate_file",
    "acreate_fine_tuning_job",
    "afile_content",
    "afile_delete",
    "afile_list",
    "afile_retrieve",
    "alist_fine_tuning_checkpoints",
    "alist_fine_tuning_events",
    "alist_fine_tuning_jobs",
    "aretrieve_fine_tuning_job",
    "cancel_fine_tuning_job",
    "create_file",
    "create_fine_tuning_job",
    "file_content",
    "file_delete",
    "file_list",
    "file_retrieve",
    "list_fine_tuning_checkpoints",
    "list_fine_tuning_events",
    "list_fine_tuning_jobs",
    "retrieve_fine_tuning_job",
]
