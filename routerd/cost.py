"""What a call cost, in USD: per-token prices from the deployment's config, else a bundled table.

Where a price comes from, in order:

1. The deployment's own ``input_cost_per_token`` / ``output_cost_per_token`` (``model_info`` or
   ``litellm_params``). Each side is taken on its own: a side the deployment leaves unset comes from
   the table, and counts as 0 when the table does not know the model either.
2. The bundled table (``routerd/data/prices.json``, list prices; its ``_meta`` says of which month),
   looked up by, in order: the exact model name (as written, and qualified with the deployment's
   provider, e.g. ``groq/llama-3.3-70b-versatile``), the deployment's ``base_model``, the name
   without its provider prefix (``azure/gpt-4o`` -> ``gpt-4o``), then each of those with date and
   version suffixes removed (``gpt-4o-2024-08-06`` -> ``gpt-4o``, ``claude-3-5-sonnet-20241022``,
   ``gemini-1.5-pro-002``, ``mistral-large-latest``, ``...@20240620``). Fine-tuned OpenAI models
   (``ft:gpt-4o-mini-2024-07-18:org::id``) are priced by their ``ft:<base>`` entry.

Models registered at run time come first: entries in LiteLLM's ``model_prices_and_context_window.json``
format, from the file named by ``ROUTERD_MODEL_PRICES`` (read on first use) or given to
:func:`register_model` (``routerd.register_model``). Their ``input_cost_per_token`` /
``output_cost_per_token`` override the bundled table, so prices can be updated without a release.

The rule for a model routerd has no price for: the cost is **unknown**, reported as ``None`` -- never
guessed, and never reported as 0, which is reserved for a deployment configured as free
(``input_cost_per_token: 0``). The server then sends no ``x-routerd-response-cost`` header, the log
line has ``"cost_usd": null``, and the metrics count the request as unpriced.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.providers.infer import PROVIDER_PREFIXES

__all__ = [
    "COST_HEADER",
    "Price",
    "candidate_keys",
    "completion_cost",
    "cost_per_token",
    "lookup_price",
    "price_table",
    "register_model",
    "registered_models",
    "request_cost",
    "response_cost_header",
]

COST_HEADER = "x-routerd-response-cost"

# One version/date suffix at the end of a model name; stripped repeatedly, longest forms first so that
# ``-2024-08-06`` is not read as ``-08-06``.
_VERSION_SUFFIX = re.compile(
    r"(?:@[\w.\-]+"  # vertex: claude-3-5-sonnet@20240620
    r"|-\d{4}-\d{2}-\d{2}"  # gpt-4o-2024-08-06
    r"|-\d{8}"  # claude-3-haiku-20240307
    r"|-\d{2}-\d{2}"  # gemini-2.5-flash-preview-05-20
    r"|-\d{3,4}"  # gemini-1.5-pro-002, gpt-3.5-turbo-0125, mistral-large-2411
    r"|-v\d+"  # claude-3-5-sonnet-v2
    r"|-latest|-preview|-exp)$"
)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token, and where the price came from (``"deployment"`` or ``"table:<key>"``)."""

    input_cost_per_token: float
    output_cost_per_token: float
    source: str

    def cost(self, prompt_tokens: int, completion_tokens: int) -> tuple[float, float]:
        return prompt_tokens * self.input_cost_per_token, completion_tokens * self.output_cost_per_token


@functools.cache
def price_table() -> Mapping[str, Price]:
    """The bundled table, loaded once: model key -> :class:`Price`."""
    raw = orjson.loads(resources.files("routerd").joinpath("data/prices.json").read_bytes())
    return {
        key: Price(
            float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"]), f"table:{key}"
        )
        for key, entry in raw.items()
        if not key.startswith("_")
    }


#: the environment variable naming a LiteLLM-format price/context file (also ``Settings.model_prices``)
MODEL_PRICES_ENV = "ROUTERD_MODEL_PRICES"

_registered: dict[str, dict[str, Any]] = {}
_registered_lock = threading.Lock()
_env_loaded = False


def registered_models() -> Mapping[str, Mapping[str, Any]]:
    """Models registered at run time (LiteLLM-format entries), the ``ROUTERD_MODEL_PRICES`` file first."""
    global _env_loaded
    if not _env_loaded:
        with _registered_lock:
            if not _env_loaded:
                _env_loaded = True
                path = os.environ.get(MODEL_PRICES_ENV)
                if path:
                    _merge(_read_entries(path))
    return _registered


def _read_entries(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as handle:
            raw = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cannot read model prices from {source}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a model prices file is a JSON object of model name -> entry")
    return raw


def _merge(entries: Mapping[str, Any]) -> None:
    for name, entry in entries.items():
        if name == "sample_spec" or not isinstance(entry, Mapping):
            continue  # LiteLLM's file documents its fields in a "sample_spec" entry
        for key in ("input_cost_per_token", "output_cost_per_token"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"model {name!r}: {key} must be a number, got {value!r}")
        _registered[name] = {**_registered.get(name, {}), **entry}
    _cached_price.cache_clear()


def register_model(model_cost: Mapping[str, Any] | str) -> dict[str, Any]:
    """Add or update models (LiteLLM's ``register_model``): a mapping of model name -> LiteLLM-format
    entry (``input_cost_per_token``, ``output_cost_per_token``, ``max_input_tokens``, ``supports_*``...),
    or the path of a JSON file of them. Registered prices win over the bundled table."""
    entries = _read_entries(model_cost) if isinstance(model_cost, str) else dict(model_cost)
    registered_models()  # the environment's file first, so the call's entries override it
    with _registered_lock:
        _merge(entries)
    return dict(_registered)


def _registered_price(key: str) -> Price | None:
    entry = registered_models().get(key)
    if entry is None:
        return None
    prompt, completion = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if prompt is None and completion is None:
        return None
    return Price(float(prompt or 0.0), float(completion or 0.0), f"registered:{key}")


def price_table_meta() -> Mapping[str, Any]:
    """The table's ``_meta``: the month its prices were taken from, and its caveats."""
    raw = orjson.loads(resources.files("routerd").joinpath("data/prices.json").read_bytes())
    meta: Mapping[str, Any] = raw.get("_meta", {})
    return meta


def _strip_provider(name: str) -> str:
    prefix, sep, rest = name.partition("/")
    return rest if sep and prefix in PROVIDER_PREFIXES else name


def _without_versions(name: str) -> Iterator[str]:
    """``name`` with one, then two, ... version suffixes removed (each shorter form once)."""
    while True:
        shorter = _VERSION_SUFFIX.sub("", name)
        if shorter == name or not shorter:
            return
        yield shorter
        name = shorter


def _fine_tuned_base(name: str) -> str | None:
    """``ft:gpt-4o-mini-2024-07-18:org:suffix:id`` -> ``ft:gpt-4o-mini-2024-07-18``."""
    if not name.startswith("ft:"):
        return None
    base = name[3:].split(":", 1)[0]
    return f"ft:{base}" if base else None


def _candidates(names: Iterable[str], provider: str | None) -> Iterator[str]:
    """Table keys to try for ``names`` (most specific first), in the order the module docstring gives."""
    exact: list[str] = []
    for name in names:
        exact.append(name)
        if provider:
            exact.append(f"{provider}/{_strip_provider(name)}")
    stripped = [_strip_provider(name) for name in exact]
    tuned = [t for t in map(_fine_tuned_base, stripped) if t is not None]
    seen: set[str] = set()
    for name in (*exact, *stripped, *tuned):
        if name not in seen:
            seen.add(name)
            yield name
    for name in (*exact, *stripped, *tuned):
        for shorter in _without_versions(name):
            if shorter not in seen:
                seen.add(shorter)
                yield shorter


def candidate_keys(model: str, provider: str | None = None) -> list[str]:
    """Table keys tried for ``model``, most specific first (see the module docstring)."""
    return list(_candidates([model], provider))


def _table_price(names: Iterable[str], provider: str | None) -> Price | None:
    table = price_table()
    registered = bool(registered_models())
    for key in _candidates(names, provider):
        price = (_registered_price(key) if registered else None) or table.get(key)
        if price is not None:
            return price
    return None


def _combine(table_price: Price | None, own_in: float | None, own_out: float | None) -> Price | None:
    """The deployment's own prices, side by side, over the table's (see the module docstring)."""
    if own_in is None and own_out is None:
        return table_price
    return Price(
        own_in if own_in is not None else (table_price.input_cost_per_token if table_price else 0.0),
        own_out if own_out is not None else (table_price.output_cost_per_token if table_price else 0.0),
        "deployment",
    )


def lookup_price(
    model: str | None,
    *,
    deployment: Deployment | None = None,
    response_model: str | None = None,
) -> Price | None:
    """The per-token price of a call, or None when routerd has no price for it (see module docstring).

    ``model`` is the model as the caller names it (``openai/gpt-4o``); ``response_model`` is the name
    the upstream answered with, tried last (useful for Azure deployments named freely).
    """
    if deployment is None:
        names = [n for n in (model, response_model) if n]
        return _table_price(dict.fromkeys(names), None) if names else None
    info = deployment.info
    names = [
        n for n in (model, deployment.litellm_model, deployment.model, info.base_model, response_model) if n
    ]
    table_price = _table_price(dict.fromkeys(names), deployment.provider)
    return _combine(table_price, info.input_cost_per_token, info.output_cost_per_token)


def cost_per_token(
    model: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    *,
    deployment: Deployment | None = None,
) -> tuple[float, float] | None:
    """``(prompt_cost, completion_cost)`` in USD, or None when no price is known for ``model``."""
    price = lookup_price(model, deployment=deployment)
    return price.cost(prompt_tokens, completion_tokens) if price is not None else None


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _usage_tokens(response: Any) -> tuple[int, int]:
    usage = _field(response, "usage")
    if usage is None:
        return 0, 0
    return int(_field(usage, "prompt_tokens") or 0), int(_field(usage, "completion_tokens") or 0)


def completion_cost(
    completion_response: Any,
    model: str | None = None,
    deployment: Deployment | None = None,
) -> float | None:
    """USD cost of one response (an OpenAI-shaped dict, or an object with ``usage`` and ``model``).

    Tokens come from the response's ``usage``; the price from ``deployment`` / ``model`` / the model
    the response names. None when no price is known (a response without usage costs 0.0 if priced).
    """
    prompt_tokens, completion_tokens = _usage_tokens(completion_response)
    response_model = _field(completion_response, "model")
    price = lookup_price(
        model,
        deployment=deployment,
        response_model=response_model if isinstance(response_model, str) else None,
    )
    if price is None:
        return None
    prompt_cost, output_cost = price.cost(prompt_tokens, completion_tokens)
    return prompt_cost + output_cost


# The server asks for the same deployment's price on every request: resolve it once per distinct
# (price-relevant) deployment shape. Keyed by values, not the Deployment (its mappings are unhashable).
@functools.lru_cache(maxsize=4096)
def _cached_price(
    provider: str,
    names: tuple[str, ...],
    own_in: float | None,
    own_out: float | None,
) -> Price | None:
    return _combine(_table_price(names, provider), own_in, own_out)


def request_cost(
    deployment: Deployment,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    response_model: str | None = None,
) -> float | None:
    """USD cost of a call answered by ``deployment`` (the server's per-request path; cached lookup).

    None when no price is known. ``response_model`` (the ``model`` field of the upstream answer) is
    tried after the deployment's own names.
    """
    info = deployment.info
    names = (deployment.litellm_model, deployment.model, info.base_model or "", response_model or "")
    price = _cached_price(
        deployment.provider,
        tuple(dict.fromkeys(n for n in names if n)),
        info.input_cost_per_token,
        info.output_cost_per_token,
    )
    if price is None:
        return None
    return prompt_tokens * price.input_cost_per_token + completion_tokens * price.output_cost_per_token


def response_cost_header(cost: float | None) -> dict[str, str]:
    """``{"x-routerd-response-cost": "0.000123"}``, or ``{}`` when the cost is unknown.

    Plain decimal notation (no exponent) to 12 places, so every client parses it as a number.
    """
    if cost is None:
        return {}
    text = f"{cost:.12f}".rstrip("0").rstrip(".")
    return {COST_HEADER: text or "0"}
