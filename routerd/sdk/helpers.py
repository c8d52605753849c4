"""Token counts and costs for SDK users: ``token_counter``, ``completion_cost``, ``cost_per_token``.

Token counts are **estimates** (:mod:`routerd.tokens`: about four characters per token plus OpenAI's
per-message overhead), because routerd ships no tokenizer files. Prices come from the same data as the
daemon's cost header and metrics (:mod:`routerd.cost`): a deployment's configured prices, else the
bundled price table. An unknown price is ``None``, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import routerd.cost as _cost
from routerd.tokens import count_message_tokens, count_prompt_tokens

__all__ = ["completion_cost", "cost_per_token", "token_counter"]


def token_counter(
    model: str = "",
    messages: Iterable[Mapping[str, Any]] | None = None,
    text: str | list[str] | None = None,
    tools: Any = None,
    **_ignored: Any,
) -> int:
    """Estimated tokens of ``messages`` (a chat prompt, with per-message overhead) or of ``text``.

    The same estimate for every ``model``; real upstream usage (``response.usage``) is exact.
    """
    if messages is not None:
        return count_message_tokens(messages, tools)
    return count_prompt_tokens(text)


def cost_per_token(
    model: str, prompt_tokens: int = 0, completion_tokens: int = 0
) -> tuple[float, float] | None:
    """``(prompt_cost_usd, completion_cost_usd)`` for ``model``, or None when its price is unknown."""
    return _cost.cost_per_token(model, prompt_tokens, completion_tokens)


def completion_cost(
    completion_response: Any = None,
    model: str | None = None,
    messages: Iterable[Mapping[str, Any]] | None = None,
    prompt: str = "",
    completion: str = "",
    **_ignored: Any,
) -> float | None:
    """USD cost of a response, or of a prompt/completion pair; None when the price is unknown.

    For a response returned by the SDK the price is the one of the deployment that served it (its
    configured prices first), computed when the response arrived. For a response dict, or with
    ``model`` given, the price table is consulted by model name. Without a response, tokens are
    estimated from ``messages`` or ``prompt`` and from ``completion`` (see :func:`token_counter`).
    """
    if completion_response is not None:
        hidden = getattr(completion_response, "_hidden_params", None)
        if model is None and isinstance(hidden, Mapping) and "response_cost" in hidden:
            known: float | None = hidden["response_cost"]
            return known
        return _cost.completion_cost(completion_response, model=model)
    if model is None:
        raise TypeError("completion_cost() needs a completion_response, or a model with prompt/messages")
    prompt_tokens = count_message_tokens(messages) if messages is not None else count_prompt_tokens(prompt)
    costs = _cost.cost_per_token(model, prompt_tokens, count_prompt_tokens(completion))
    return None if costs is None else costs[0] + costs[1]
