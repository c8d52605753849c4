"""From ``completion(model=..., api_key=..., ...)`` arguments to the deployment that serves the call.

A call without ``model_list`` is served by a routing table built on the fly: one group named after
the requested model with one deployment, plus one group per ``fallbacks`` entry. Provider resolution
is the daemon's (:func:`routerd.providers.infer.split_model`): ``provider/model``, bare names
(``gpt-4o`` and ``ft:gpt-4o-mini:org:suffix:id`` -> openai, ``claude-*`` -> anthropic, ``gemini-*``
-> gemini), ``azure/<deployment>``, or ``custom_llm_provider=``. Keys, bases and API versions come
from the arguments, else from the provider's usual environment variables, read at call time, so a key
exported after the first call is picked up by the next one.

``mock_response=`` serves the call with the built-in ``mock`` provider whatever the model's provider,
under the model's own name, so nothing goes over the network.

A resolved deployment is described by :class:`Target`. Its :meth:`Target.cache_key` identifies it
without holding any secret (keys enter as digests), so it can key the SDK's router cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from routerd.config.frozen import is_secret_key
from routerd.config.keys import MOCK_PARAMS
from routerd.errors import BadRequestError
from routerd.providers.infer import (
    DEFAULT_API_BASE_ENV,
    DEFAULT_API_KEY_ENV,
    DEFAULT_API_VERSION_ENV,
    PROVIDER_PREFIXES,
    known_prefixes,
    split_model,
)

__all__ = ["DEPLOYMENT_KWARGS", "Target", "resolve_fallbacks", "resolve_target"]

#: ``completion()`` keyword arguments that describe the deployment (``litellm_params``), not the call
#: body: provider credentials and settings, client-level retries, prices, and the mock's fault knobs.
DEPLOYMENT_KWARGS = frozenset(
    {
        "stream_timeout",
        "max_retries",
        "rpm",
        "tpm",
        "drop_params",
        "additional_drop_params",
        "modify_params",
        "input_cost_per_token",
        "output_cost_per_token",
        "base_model",
        "region_name",
        "api_type",
        "azure_ad_token",
        "azure_username",
        "azure_password",
        "azure_scope",
        "tenant_id",
        "client_id",
        "client_secret",
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "aws_role_name",
        "aws_session_name",
        "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint",
    }
    | MOCK_PARAMS
)

MOCK = "mock"


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment of an on-the-fly table: the group it serves and its ``litellm_params``."""

    group: str  # the public model name (what the caller asked for)
    provider: str
    model: str  # the upstream model name, provider prefix stripped
    params: Mapping[str, Any] = field(repr=False)  # litellm_params, credentials included

    def cache_key(self) -> tuple[Any, ...]:
        """What identifies this deployment, with every secret replaced by a digest."""
        safe = {key: _digest(value) if _secret(key, value) else value for key, value in self.params.items()}
        return (self.group, orjson.dumps(safe, option=orjson.OPT_SORT_KEYS, default=repr))

    def model_list_entry(self) -> dict[str, Any]:
        return {"model_name": self.group, "litellm_params": dict(self.params)}


def _secret(key: str, value: Any) -> bool:
    return isinstance(value, str) and is_secret_key(key)


def _digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:32]


def resolve_target(
    model: str,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    api_version: str | None = None,
    organization: str | None = None,
    custom_llm_provider: str | None = None,
    deployment_id: str | None = None,
    mock: bool = False,
    deployment_kwargs: Mapping[str, Any] | None = None,
    group: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """The deployment serving ``model`` for these arguments.

    Raises :class:`~routerd.errors.BadRequestError` when the provider cannot be told (an unknown
    bare name without ``custom_llm_provider``), naming the accepted prefixes.
    """
    if not isinstance(model, str) or not model:
        raise BadRequestError("'model' is required, e.g. model='gpt-4o'", param="model")
    environ = os.environ if env is None else env
    provider, upstream = _provider_and_model(model, custom_llm_provider, deployment_id)
    params: dict[str, Any] = dict(deployment_kwargs or {})
    if mock:
        # The mock answers under the upstream name the real call would report (prefix stripped),
        # or the name as given when no provider can be told.
        params["model"] = f"{MOCK}/{upstream if provider is not None else model}"
        return Target(group or model, MOCK, params["model"][len(MOCK) + 1 :], params)
    if provider is None:
        raise BadRequestError(
            f"cannot tell which provider serves model '{model}'; name it as provider/model "
            f"({', '.join(known_prefixes())}) or pass custom_llm_provider=",
            model=model,
            param="model",
        )
    params["model"] = f"{provider}/{upstream}"
    credentials = {
        "api_key": api_key if api_key is not None else _env(environ, DEFAULT_API_KEY_ENV, provider),
        "api_base": api_base if api_base is not None else _env(environ, DEFAULT_API_BASE_ENV, provider),
        "api_version": (
            api_version if api_version is not None else _env(environ, DEFAULT_API_VERSION_ENV, provider)
        ),
        "organization": organization if organization is not None else _organization(environ, provider),
    }
    params.update({key: value for key, value in credentials.items() if value is not None})
    return Target(group or model, provider, upstream, params)


def _provider_and_model(
    model: str, custom_llm_provider: str | None, deployment_id: str | None
) -> tuple[str | None, str]:
    if custom_llm_provider:
        provider = PROVIDER_PREFIXES.get(custom_llm_provider)
        if provider is None:
            raise BadRequestError(
                f"unknown custom_llm_provider '{custom_llm_provider}'; routerd has: {', '.join(known_prefixes())}",
                model=model,
                param="custom_llm_provider",
            )
        prefix = f"{custom_llm_provider}/"
        return provider, model[len(prefix) :] if model.startswith(prefix) else model
    if deployment_id:
        # the pre-1.0 openai SDK's spelling of an Azure deployment, which LiteLLM still accepts
        return "azure", deployment_id
    return split_model(model)


#: what the openai package (>= 1.0) reads for its base URL; LiteLLM reads it before OPENAI_API_BASE
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"


def _env(environ: Mapping[str, str], variables: Mapping[str, str], provider: str) -> str | None:
    if variables is DEFAULT_API_BASE_ENV and provider in {"openai", "text-completion-openai"}:
        base_url = environ.get(OPENAI_BASE_URL_ENV)
        if base_url:
            return base_url
    name = variables.get(provider)
    return (environ.get(name) or None) if name else None


def _organization(environ: Mapping[str, str], provider: str) -> str | None:
    if provider in {"openai", "text-completion-openai"}:
        return environ.get("OPENAI_ORGANIZATION") or None
    return None


def resolve_fallbacks(
    fallbacks: Sequence[Any],
    primary: Target,
    *,
    mock: bool,
    env: Mapping[str, str] | None = None,
) -> list[Target]:
    """Targets for a call's ``fallbacks``: model names, or mappings ``{"model": ..., <params>}``.

    A name is resolved like the primary model, with its own provider's credentials; a mapping may
    carry its own ``api_key`` / ``api_base`` / ... A target whose name equals an earlier one is
    given a distinct group name, so every fallback stays reachable.
    """
    targets: list[Target] = []
    taken = {primary.group}
    for index, item in enumerate(fallbacks):
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, Mapping) and isinstance(item.get("model"), str):
            options = {k: v for k, v in item.items() if k != "model"}
            name = item["model"]
        else:
            raise BadRequestError(
                f"fallbacks[{index}] must be a model name or a mapping with a 'model' key", param="fallbacks"
            )
        group = name
        suffix = 1
        while group in taken:
            suffix += 1
            group = f"{name}#{suffix}"
        taken.add(group)
        targets.append(
            resolve_target(
                name,
                api_key=options.pop("api_key", None),
                api_base=options.pop("api_base", None) or options.pop("base_url", None),
                api_version=options.pop("api_version", None),
                organization=options.pop("organization", None),
                custom_llm_provider=options.pop("custom_llm_provider", None),
                mock=mock or "mock_response" in options,
                deployment_kwargs=options,
                group=group,
                env=env,
            )
        )
    return targets
