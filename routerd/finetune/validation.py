"""Checks of fine-tuning and file requests, shared by the server and the SDK.

Each failure is a 400 naming the field (``param``) and what was expected, before anything is sent
upstream. Only routerd-relevant rules are enforced here; value ranges a provider owns are its call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError
from routerd.finetune.types import MAX_SUFFIX_CHARS, FileListQuery, Hyperparameters, JobRequest, PageQuery

#: keys that steer routerd and are never forwarded upstream
ROUTERD_KEYS = frozenset({"custom_llm_provider"})
_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs", "adapter_size")
#: the largest page a list request may ask for
MAX_LIMIT = 10_000


def _invalid(message: str, param: str, code: str = "invalid_type") -> BadRequestError:
    return BadRequestError(message, param=param, code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def job_request(body: Any) -> JobRequest:
    """A checked ``POST /fine_tuning/jobs`` body."""
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object", code="invalid_request_body")
    model = _required_str(body, "model")
    training_file = _required_str(body, "training_file")
    suffix = _optional(body, "suffix", str, "a string")
    if suffix is not None and len(suffix) > MAX_SUFFIX_CHARS:
        raise _invalid(
            f"'suffix' must be at most {MAX_SUFFIX_CHARS} characters, got {len(suffix)} ({suffix!r})",
            "suffix",
            "invalid_value",
        )
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise _invalid("'seed' must be an integer", "seed")
    integrations = _optional(body, "integrations", list, "an array")
    method = _optional(body, "method", dict, "an object")
    hyperparameters = _hyperparameters(body.get("hyperparameters"), "hyperparameters")
    if method is not None:
        hyperparameters = _method_hyperparameters(method) or hyperparameters
    return JobRequest(
        model=model,
        training_file=training_file,
        body={key: value for key, value in body.items() if key not in ROUTERD_KEYS},
        hyperparameters=hyperparameters,
        suffix=suffix,
        validation_file=_optional(body, "validation_file", str, "a string"),
        integrations=integrations,
        seed=seed,
        method=method,
        metadata=_optional(body, "metadata", dict, "an object"),
    )


def _required_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise _invalid(f"missing required field '{name}'", name, "missing_required_parameter")
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"'{name}' must be a non-empty string", name)
    return value


def _optional(body: Mapping[str, Any], name: str, kind: type, described: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise _invalid(f"'{name}' must be {described}", name)
    return value


def _hyperparameters(raw: Any, where: str) -> Hyperparameters:
    if raw is None:
        return Hyperparameters()
    if not isinstance(raw, dict):
        raise _invalid(f"'{where}' must be an object", where)
    unknown = sorted(set(raw) - set(_HYPERPARAMETERS))
    if unknown:
        raise _invalid(
            f"unknown hyperparameter(s) {', '.join(unknown)} in '{where}'; known: batch_size, "
            "learning_rate_multiplier, n_epochs (and adapter_size for vertex_ai)",
            f"{where}.{unknown[0]}",
            "invalid_value",
        )
    batch_size = _auto_or(raw, "batch_size", where, lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    rate = _auto_or(raw, "learning_rate_multiplier", where, lambda v: _is_number(v) and v > 0, "a number > 0")
    n_epochs = _auto_or(raw, "n_epochs", where, lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    adapter_size = raw.get("adapter_size")
    if adapter_size is not None and not (_is_int(adapter_size) and adapter_size >= 1):
        raise _invalid(f"'{where}.adapter_size' must be an integer >= 1", f"{where}.adapter_size")
    return Hyperparameters(batch_size, rate, n_epochs, adapter_size)


def _auto_or(raw: Mapping[str, Any], name: str, where: str, check: Any, described: str) -> Any:
    value = raw.get(name)
    if value is None or value == "auto":
        return value
    if not check(value):
        raise _invalid(f"'{where}.{name}' must be \"auto\" or {described}, got {value!r}", f"{where}.{name}")
    return value


def _method_hyperparameters(method: Mapping[str, Any]) -> Hyperparameters | None:
    kind = method.get("type")
    if not isinstance(kind, str):
        raise _invalid("'method.type' must be a string (supervised, dpo or reinforcement)", "method.type")
    settings = method.get(kind)
    if not isinstance(settings, dict) or settings.get("hyperparameters") is None:
        return None
    if kind != "supervised":  # dpo / reinforcement hyperparameters are the provider's to check
        return None
    return _hyperparameters(settings["hyperparameters"], "method.supervised.hyperparameters")


def page_query(params: Mapping[str, Any]) -> PageQuery:
    """``after`` / ``limit`` from a query string (or SDK arguments)."""
    after = params.get("after")
    if after is not None and (not isinstance(after, str) or not after):
        raise _invalid("'after' must be a non-empty string", "after")
    return PageQuery(after=after, limit=limit_value(params.get("limit")))


def limit_value(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw)
    if not _is_int(raw) or not 1 <= raw <= MAX_LIMIT:
        raise _invalid(f"'limit' must be an integer between 1 and {MAX_LIMIT}", "limit", "invalid_value")
    return int(raw)


def file_list_query(params: Mapping[str, Any]) -> FileListQuery:
    page = page_query(params)
    order = params.get("order")
    if order is not None and order not in ("asc", "desc"):
        raise _invalid("'order' must be 'asc' or 'desc'", "order", "invalid_value")
    purpose = params.get("purpose")
    if purpose is not None and (not isinstance(purpose, str) or not purpose):
        raise _invalid("'purpose' must be a non-empty string", "purpose")
    return FileListQuery(purpose=purpose, limit=page.limit, after=page.after, order=order)


def purpose_value(raw: Any) -> str:
    if raw is None or raw == "":
        raise _invalid(
            "missing required field 'purpose' (e.g. fine-tune)", "purpose", "missing_required_parameter"
        )
    if not isinstance(raw, str):
        raise _invalid("'purpose' must be a string", "purpose")
    return raw
