"""The files of a gateway batch, pure: the input JSONL read and checked line by line (bounded), rewritten
for the deployment that runs it; the usage its output file reports; and what that usage costs.

An input line is OpenAI's ``{"custom_id", "method": "POST", "url": <the batch's endpoint>, "body"}``;
each body is checked with the validator of the endpoint it names (the one ``/v1/chat/completions``
requests go through), and every line must name the same ``model`` (a batch runs on one model group,
as on OpenAI).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.cost import candidate_keys, registered_models, request_cost
from routerd.errors import BadRequestError
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MODERATIONS
from routerd.server.validation import validate_body

JSON = dict[str, Any]

#: the endpoints a batch may run (OpenAI's list), each with routerd's name for it (what the body
#: validators and the guardrails' text readers are keyed by)
ENDPOINT_NAMES: Mapping[str, str] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/moderations": MODERATIONS,
    "/v1/responses": "responses",
}
#: the body validator of each batch endpoint (None: only ``model`` is checked)
ENDPOINT_KINDS: Mapping[str, str | None] = {
    path: None if name == "responses" else name for path, name in ENDPOINT_NAMES.items()
}
#: the per-token batch prices of LiteLLM's price format (a deployment's ``litellm_params`` /
#: ``model_info``, or a registered model entry)
BATCH_PRICE_KEYS = ("input_cost_per_token_batches", "output_cost_per_token_batches")


@dataclass(frozen=True, slots=True)
class BatchInput:
    """A checked input file: the model every line names, and the lines as parsed."""

    model: str
    lines: tuple[JSON, ...]


def _refuse(message: str, code: str = "invalid_batch_file") -> BadRequestError:
    return BadRequestError(message, param="input_file_id", code=code)


def read_batch_input(content: bytes, endpoint: str, *, max_lines: int, max_bytes: int) -> BatchInput:
    """The checked lines of an input file for ``endpoint``; a 400 naming the line otherwise."""
    if len(content) > max_bytes:
        raise _refuse(
            f"the input file has {len(content)} bytes; a gateway batch takes at most {max_bytes} "
            "(ROUTERD_BATCH_MAX_FILE_BYTES)",
            "batch_file_too_large",
        )
    raw_lines = [line for line in content.splitlines() if line.strip()]
    if not raw_lines:
        raise _refuse("the input file has no requests")
    if len(raw_lines) > max_lines:
        raise _refuse(
            f"the input file has {len(raw_lines)} requests; a gateway batch takes at most {max_lines} "
            "(ROUTERD_BATCH_MAX_LINES)",
            "batch_file_too_large",
        )
    kind = ENDPOINT_KINDS.get(endpoint)
    model: str | None = None
    seen: set[str] = set()
    lines: list[JSON] = []
    for number, raw in enumerate(raw_lines, 1):
        line = _line(raw, number, endpoint, kind, seen)
        if model is None:
            model = line["body"]["model"]
        elif line["body"]["model"] != model:
            raise _refuse(
                f"line {number}: model {str(line['body']['model'])[:256]!r} differs from line 1's "
                f"{model[:256]!r}; a batch runs on one model"
            )
        lines.append(line)
    assert model is not None
    return BatchInput(model, tuple(lines))


def _line(raw: bytes, number: int, endpoint: str, kind: str | None, seen: set[str]) -> JSON:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _refuse(f"line {number} is not JSON") from None
    if not isinstance(line, dict):
        raise _refuse(f"line {number} is not a JSON object")
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _refuse(f"line {number}: 'custom_id' must be a non-empty string")
    if custom_id in seen:
        raise _refuse(f"line {number}: custom_id {custom_id[:256]!r} is used twice")
    seen.add(custom_id)
    if line.get("method") != "POST":
        raise _refuse(f"line {number}: 'method' must be 'POST'")
    if line.get("url") != endpoint:
        raise _refuse(f"line {number}: 'url' must be the batch's endpoint {endpoint!r}")
    body = line.get("body")
    if not isinstance(body, dict):
        raise _refuse(f"line {number}: 'body' must be a JSON object")
    try:
        if kind is not None:
            validate_body(kind, body)
        elif not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequestError("missing required field 'model'")
    except BadRequestError as exc:
        where = f" ({exc.param})" if exc.param else ""
        raise _refuse(f"line {number}{where}: {exc.message}") from None
    return line


def rewrite_for(batch: BatchInput, upstream_model: str) -> bytes:
    """The input file as the deployment gets it: every body's ``model`` its own model id."""
    out = [orjson.dumps({**line, "body": {**line["body"], "model": upstream_model}}) for line in batch.lines]
    return b"\n".join(out) + b"\n"


def output_usage(content: bytes) -> tuple[int, int]:
    """(prompt, completion) tokens the answers of an output file report, summed (chat and completion
    usage, embeddings' prompt tokens, Responses' input/output tokens); lines without usage count 0."""
    prompt = completion = 0
    for raw in content.splitlines():
        try:
            line = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            continue
        response = line.get("response") if isinstance(line, dict) else None
        body = response.get("body") if isinstance(response, dict) else None
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            continue
        prompt += _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion += _int(usage.get("completion_tokens", usage.get("output_tokens")))
    return prompt, completion


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def batch_cost(deployment: Deployment, prompt: int, completion: int) -> float | None:
    """What a batch's tokens cost: the batch prices when the deployment (``litellm_params`` or
    ``model_info``) or a registered price entry has both, else the deployment's normal price (the
    bundled table has no batch prices); None when routerd has no price at all."""
    prices = _batch_prices(deployment)
    if prices is not None:
        return prompt * prices[0] + completion * prices[1]
    return request_cost(deployment, prompt, completion)


def _batch_prices(deployment: Deployment) -> tuple[float, float] | None:
    sources: list[Mapping[str, Any]] = [deployment.extra, deployment.info.extra]
    registered = registered_models()
    if registered:
        for key in candidate_keys(deployment.model, deployment.provider):
            entry = registered.get(key)
            if entry is not None:
                sources.append(entry)
    for source in sources:
        values = [source.get(key) for key in BATCH_PRICE_KEYS]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return float(values[0]), float(values[1])  # type: ignore[arg-type]
    return None
