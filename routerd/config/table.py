"""The compiled, immutable routing table.

A :class:`RoutingTable` is what the config pipeline produces and what the router reads. It is built
once per config generation (load -> validate -> compile) and never mutated: a reload builds a new one
and publishes it with one reference assignment, and a request keeps the snapshot it started with.

Everything here is a frozen, slotted dataclass holding tuples and read-only mappings, so that sharing
a table between concurrent requests needs no locks.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class _EmptyMapping(Mapping[str, Any]):
    """The shared empty default of mapping fields: read-only, and hashable, because Python 3.11's
    dataclasses reject unhashable defaults (``MappingProxyType`` is hashable only from 3.12)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


EMPTY_MAP: Mapping[str, Any] = _EmptyMapping()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """``model_info`` of a deployment: limits and prices the router uses for decisions."""

    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    base_model: str | None = None
    mode: str | None = None  # "chat" | "completion" | "embedding" | ...
    extra: Mapping[str, Any] = EMPTY_MAP


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream endpoint a public model group can be served by.

    ``id`` is stable across reloads: ``model_info.id`` when given, else a hash of the deployment's
    parameters, so health state (cooldowns, latency, usage windows) carries over when nothing changed.
    """

    id: str
    group: str  # the public ``model_name``
    provider: str  # registry name of the adapter: "openai", "azure", "mock", "anthropic", ...
    model: str  # the upstream model name, provider prefix stripped
    litellm_model: str  # ``litellm_params.model`` as written
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    organization: str | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    max_retries: int | None = None  # retries inside one attempt (litellm's client-level setting)
    num_retries: int | None = None  # router retries when this deployment's group is called
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    order: int | None = None
    cooldown_time: float | None = None
    tags: tuple[str, ...] = ()
    region_name: str | None = None
    mock_response: Any = None
    drop_params: bool | None = None
    # provider-specific keys of ``litellm_params`` that routerd does not interpret, passed through to
    # the adapter (e.g. ``vertex_project``, mock fault settings, extra body fields)
    extra: Mapping[str, Any] = EMPTY_MAP
    info: ModelInfo = ModelInfo()
    # what the provider adapter precomputed at compile time (URLs, headers); opaque to the router
    prepared: Any = field(default=None, compare=False, repr=False)

    @property
    def input_cost_per_token(self) -> float | None:
        return self.info.input_cost_per_token

    @property
    def output_cost_per_token(self) -> float | None:
        return self.info.output_cost_per_token


@dataclass(frozen=True, slots=True)
class Group:
    """A public model name and the deployments that serve it (``model_name`` in the file).

    ``name`` may be a wildcard such as ``anthropic/*``; :meth:`RoutingTable.resolve` matches those
    after exact names and aliases.
    """

    name: str
    deployments: tuple[Deployment, ...]

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.name


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries per error class (``router_settings.retry_policy``); None means the router's default."""

    bad_request: int | None = None
    authentication: int | None = None
    timeout: int | None = None
    rate_limit: int | None = None
    content_policy: int | None = None
    internal_server: int | None = None


@dataclass(frozen=True, slots=True)
class AllowedFailsPolicy:
    """Failures tolerated per error class before a cooldown (``allowed_fails_policy``)."""

    bad_request: int | None = None
    authentication: int | None = None
    timeout: int | None = None
    rate_limit: int | None = None
    content_policy: int | None = None
    internal_server: int | None = None


@dataclass(frozen=True, slots=True)
class RouterPolicy:
    """``router_settings`` merged with the router-relevant ``litellm_settings``, with defaults applied."""

    routing_strategy: str = "simple-shuffle"
    routing_strategy_args: Mapping[str, Any] = EMPTY_MAP
    num_retries: int = 2
    retry_policy: RetryPolicy = RetryPolicy()
    allowed_fails: int = 3
    allowed_fails_policy: AllowedFailsPolicy = AllowedFailsPolicy()
    cooldown_time: float = 60.0
    max_cooldown_time: float = 300.0  # cap on an upstream-given Retry-After used as a cooldown
    disable_cooldowns: bool = False
    timeout: float = 600.0
    stream_timeout: float | None = None
    retry_after: float = 0.0  # minimum sleep before a retry on the same deployment set
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    fallbacks: Mapping[str, tuple[str, ...]] = EMPTY_MAP
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = EMPTY_MAP
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = EMPTY_MAP
    default_fallbacks: tuple[str, ...] = ()
    max_fallbacks: int = 5
    drop_params: bool = False
    enable_pre_call_checks: bool = False


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One entry of ``files_settings`` / ``finetune_settings``."""

    custom_llm_provider: str
    api_key: str | None = field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    organization: str | None = None
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = EMPTY_MAP


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """``general_settings`` that matter to the daemon."""

    master_key: str | None = field(default=None, repr=False)
    max_request_size_mb: float = 10.0
    metrics_require_auth: bool = False
    callbacks: tuple[str, ...] = ()  # e.g. ("prometheus",)
    # shared state between replicas (router_settings.redis_url, or redis_host/port/password/db)
    redis_url: str | None = field(default=None, repr=False)
    redis_startup_nodes: tuple[
        tuple[str, int], ...
    ] = ()  # Redis Cluster (router_settings.redis_startup_nodes)
    redis_password: str | None = field(default=None, repr=False)  # for the Cluster nodes
    # process settings the file may give (flags and ROUTERD_* win); they take effect only at start-up
    host: str | None = None
    port: int | None = None
    workers: int | None = None

    def restart_only(self) -> dict[str, object]:
        """The settings a reload cannot apply: changing them needs a restart."""
        return {
            "host": self.host,
            "port": self.port,
            "workers": self.workers,
            "redis_url": self.redis_url,
            "redis_startup_nodes": self.redis_startup_nodes,
            "redis_password": self.redis_password,
        }


@dataclass(frozen=True, slots=True, eq=False)
class RoutingTable:
    """The frozen result of compiling one config file.

    Tables compare and hash by ``content_hash``: two files that compile to the same routing are equal
    regardless of formatting, comments or key order.
    """

    groups: Mapping[str, Group]  # exact (non-wildcard) groups by public name
    wildcard_groups: tuple[Group, ...]  # in file order; the first match wins
    aliases: Mapping[str, str]  # model_group_alias: alias -> group name
    policy: RouterPolicy
    server: ServerSettings
    content_hash: str
    source: str = ""  # the file it came from
    sources: tuple[str, ...] = ()  # every file read to build it: the main file, then its includes
    # sha256 of those files' bytes and of the environment they were read with (loader.source_fingerprint):
    # a reload whose sources still hash to this is skipped without compiling
    source_fingerprint: str = ""
    # other files the compiled table depends on (guardrail word and category lists), with the sha256 of
    # the bytes read: a reload skipped by source_fingerprint must also find these unchanged
    data_files: tuple[tuple[str, str], ...] = ()
    files_settings: tuple[ProviderSettings, ...] = ()
    finetune_settings: tuple[ProviderSettings, ...] = ()
    environment_variables: Mapping[str, str] = EMPTY_MAP
    warnings: tuple[str, ...] = ()
    # deployment id -> deployment, across all groups
    deployments: Mapping[str, Deployment] = EMPTY_MAP
    # aliases declared with ``hidden: true``: they route, but /v1/models does not list them
    hidden_aliases: frozenset[str] = frozenset()
    # guardrail name -> routerd.guardrails.config.CompiledGuardrail, in file order
    guardrails: Mapping[str, Any] = EMPTY_MAP
    # client keys and teams (a routerd.access.table.AccessTable); None: only the master key
    access: Any = None
    # the response cache (a routerd.cache.spec.CacheConfig); None: off
    cache: Any = None
    # litellm_settings.max_end_user_budget (a routerd.access.table.EndUserBudget); None: no end-user budget
    end_user_budget: Any = None
    # router_settings.azure_deployment_aliases: Azure deployment name -> model name the table resolves
    azure_aliases: Mapping[str, str] = EMPTY_MAP
    # litellm_settings.callbacks / success_callback / failure_callback, loaded
    # (a routerd.integrations.loading.CallbackTable); None: none
    callbacks: Any = None

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoutingTable) and other.content_hash == self.content_hash

    def resolve(self, name: str) -> Group | None:
        """The group serving a requested model name: alias, then exact name, then wildcard.

        A wildcard group such as ``anthropic/*`` answers ``anthropic/claude-3-haiku``; the caller
        substitutes the requested name into its deployments (see :func:`wildcard_deployments`).
        """
        target = self.aliases.get(name, name)
        group = self.groups.get(target)
        if group is not None:
            return group
        for wildcard in self.wildcard_groups:
            if fnmatch.fnmatchcase(target, wildcard.name):
                return wildcard
        return None

    def public_names(self) -> list[str]:
        """Names ``/v1/models`` lists: groups and aliases (wildcards are patterns, not models)."""
        return sorted({*self.groups, *(a for a in self.aliases if a not in self.hidden_aliases)})


def wildcard_deployments(group: Group, requested: str) -> tuple[Deployment, ...]:
    """Concrete deployments for ``requested`` served through wildcard ``group``.

    ``model_name: anthropic/*`` with ``litellm_params.model: anthropic/*`` and a request for
    ``anthropic/claude-3-haiku`` calls upstream model ``claude-3-haiku``. When the group name has a
    prefix (``anthropic/``) it is stripped from the request before substitution.
    """
    if not group.is_wildcard:
        return group.deployments
    prefix = group.name.split("*", 1)[0]
    tail = requested[len(prefix) :] if requested.startswith(prefix) else requested
    # Each concrete model gets its own id (and so its own health state): a cooldown of
    # anthropic/claude-3-haiku must not cool down every other anthropic model. ``prepared`` is reset
    # because URLs may embed the model name; the router re-prepares these through the registry.
    return tuple(
        replace(
            dep,
            id=f"{dep.id}:{tail}",
            group=requested,
            model=dep.model.replace("*", tail) if "*" in dep.model else dep.model,
            prepared=None,
        )
        for dep in group.deployments
    )
