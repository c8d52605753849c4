"""Stage 3: compile a validated config into the frozen :class:`RoutingTable` the router reads.

Pure apart from asking provider adapters to ``prepare`` their deployments: no file or network I/O,
and the environment comes in as a mapping. What it decides:

* **Groups**: ``model_list`` entries with the same ``model_name``, in file order; names with ``*`` are
  wildcard groups, matched after exact names and aliases.
* **Deployments**: ``provider`` is the adapter name (``azure``), ``model`` the upstream name with the
  provider prefix stripped. ``api_key`` / ``api_base`` / ``api_version`` default to the provider's
  environment variables. Prices go to ``info`` (``model_info`` first, then ``litellm_params``).
* **Stable ids**: ``model_info.id`` when given, else a digest of what identifies the upstream
  endpoint (group, provider, model, base URL, API version, organization, region, the API key's digest
  and the provider-specific parameters). Tuning values (weight, rpm/tpm, timeouts, order) are *not*
  part of it, so changing them keeps the deployment's health state across a reload.
* **Policy**: ``router_settings`` over ``litellm_settings`` over routerd's defaults.
* **content_hash**: sha256 of a canonical JSON form of everything compiled (not of the file's text),
  so reformatting, comments and key order do not change it. Secrets enter it only as digests.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

import orjson

from routerd.access.periods import parse_duration
from routerd.access.table import AccessTable, EndUserBudget, compile_access
from routerd.cache.spec import compile_cache
from routerd.config.frozen import EMPTY, FrozenDict, deep_freeze, is_secret_key
from routerd.config.issues import Issue, YamlPath
from routerd.config.models import (
    Config,
    DeploymentSpec,
    LiteLLMSettings,
    ProviderSettingsSpec,
    RouterSettings,
)
from routerd.config.table import (
    AllowedFailsPolicy,
    Deployment,
    Group,
    ModelInfo,
    ProviderSettings,
    RetryPolicy,
    RouterPolicy,
    RoutingTable,
    ServerSettings,
)
from routerd.config.validate import Validated
from routerd.errors import ConfigError
from routerd.guardrails.config import CompiledGuardrail, compile_guardrails
from routerd.integrations.loading import LISTS as CALLBACK_LISTS
from routerd.integrations.loading import CallbackTable, load_callback_table
from routerd.providers.infer import DEFAULT_API_BASE_ENV, DEFAULT_API_KEY_ENV, DEFAULT_API_VERSION_ENV

ID_LENGTH = 16


def compile_config(validated: Validated) -> RoutingTable:
    """The routing table of a validated config. Raises :class:`ConfigError` if the config has errors
    or a provider adapter rejects one of its deployments."""
    if validated.config is None or validated.errors:
        raise ConfigError(list(validated.errors))
    return _Compiler(validated, validated.config).run()


class _Compiler:
    def __init__(self, validated: Validated, config: Config) -> None:
        self.validated = validated
        self.config = config
        self.loaded = validated.loaded
        self.env = validated.loaded.env
        self.errors: list[Issue] = []

    def run(self) -> RoutingTable:
        config = self.config
        deployments = self._deployments()
        groups: dict[str, list[Deployment]] = {}
        for deployment in deployments:
            groups.setdefault(deployment.group, []).append(deployment)
        exact = {name: Group(name, tuple(deps)) for name, deps in groups.items() if "*" not in name}
        wildcard = tuple(Group(name, tuple(deps)) for name, deps in groups.items() if "*" in name)
        aliases, hidden = _aliases(config.router_settings, set(exact))
        table_parts: dict[str, Any] = {
            "groups": MappingProxyType(exact),
            "wildcard_groups": wildcard,
            "aliases": MappingProxyType(aliases),
            "hidden_aliases": frozenset(hidden),
            "policy": build_policy(config.router_settings, config.litellm_settings, aliases),
            "server": self._server(),
            "files_settings": tuple(self._provider_settings(s) for s in config.files_settings),
            "finetune_settings": tuple(self._provider_settings(s) for s in config.finetune_settings),
            "environment_variables": FrozenDict(self.loaded.file_env),
            "azure_aliases": FrozenDict(dict(config.router_settings.azure_deployment_aliases or {})),
        }
        guardrails, guardrail_files, warnings = self._guardrails()
        access = self._access()
        litellm = config.litellm_settings
        cache, cache_warnings = compile_cache(litellm.cache, litellm.cache_params)
        end_user_budget = None
        if litellm.max_end_user_budget is not None:
            duration = litellm.end_user_budget_duration
            end_user_budget = EndUserBudget(
                litellm.max_end_user_budget, parse_duration(duration) if duration else None
            )
        warnings += [
            self.loaded.marks.issue(path, message, severity="warning") for path, message in cache_warnings
        ]
        callbacks = self._callbacks()
        if litellm.turn_off_message_logging:
            callbacks = dataclasses.replace(callbacks, redact=True)
        if self.errors:
            raise ConfigError(self.errors)
        # what the hash covers besides the compiled parts: the declarations behind compiled objects
        declared = {
            "guardrails": [g.model_dump(mode="json") for g in config.guardrails],
            "guardrail_files": guardrail_files,
            "keys": [k.model_dump(mode="json") for k in config.keys],
            "teams": [t.model_dump(mode="json") for t in config.teams],
            "cache": cache.params.model_dump(mode="json") if cache else None,
            "end_user_budget": [litellm.max_end_user_budget, litellm.end_user_budget_duration],
            "turn_off_message_logging": bool(litellm.turn_off_message_logging),
        }
        return RoutingTable(
            content_hash=content_hash({**table_parts, **declared}),
            source=self.loaded.source,
            sources=self.loaded.files,
            source_fingerprint=self.loaded.fingerprint,
            data_files=tuple(sorted(guardrail_files.items())),
            warnings=tuple(str(w) for w in [*self.validated.warnings, *warnings]),
            deployments=MappingProxyType({d.id: d for d in deployments}),
            guardrails=MappingProxyType(guardrails),
            access=access,
            cache=cache,
            end_user_budget=end_user_budget,
            callbacks=callbacks,
            **table_parts,
        )

    # -- guardrails, keys and teams -----------------------------------------------------------------

    def _guardrails(self) -> tuple[dict[str, CompiledGuardrail], dict[str, str], list[Issue]]:
        base = Path(self.loaded.source).parent if self.loaded.source else Path.cwd()
        files: dict[str, str] = {}
        specs = list(enumerate(self.config.guardrails))
        compiled, problems = compile_guardrails(specs, base, files)
        warnings: list[Issue] = []
        for problem in problems:
            severity: Literal["error", "warning"] = "warning" if problem.warning else "error"
            issue = self.loaded.marks.issue(
                problem.path, problem.message, severity=severity, at_key=problem.at_key
            )
            (warnings if problem.warning else self.errors).append(issue)
        return compiled, files, warnings

    def _callbacks(self) -> CallbackTable:
        """``litellm_settings``' callbacks, imported now: one that does not load is an error at its place."""
        settings = self.loaded.data.get("litellm_settings")
        lists: dict[str, list[tuple[str, YamlPath]]] = {}
        for key in CALLBACK_LISTS:
            value = settings.get(key) if isinstance(settings, Mapping) else None
            if isinstance(value, str):
                lists[key] = [(value, ("litellm_settings", key))]
            elif isinstance(value, list):
                lists[key] = [
                    (v, ("litellm_settings", key, i)) for i, v in enumerate(value) if isinstance(v, str)
                ]
        if not lists:
            return CallbackTable()
        base = Path(self.loaded.source).absolute().parent if self.loaded.source else None
        table, problems = load_callback_table(lists, base)
        for path, message in problems:
            self._error(path, message)
        return table

    def _access(self) -> AccessTable | None:
        config = self.config
        if not config.keys and not config.teams:
            return None
        access_groups: dict[str, set[str]] = {}
        for spec in config.model_list:
            for name in spec.model_info.access_groups:
                access_groups.setdefault(name, set()).add(spec.model_name)
        table, problems = compile_access(config.keys, config.teams, access_groups)
        for path, message in problems:
            self._error(path, message)
        return table

    # -- deployments --------------------------------------------------------------------------------

    def _deployments(self) -> list[Deployment]:
        built = [self._deployment(spec) for spec in self.config.model_list]
        ids = assign_ids(built, [spec.model_info.id for spec in self.config.model_list])
        out = []
        for index, (deployment, ident) in enumerate(zip(built, ids, strict=True)):
            deployment = dataclasses.replace(deployment, id=ident)
            out.append(self._prepare(index, deployment))
        return out

    def _deployment(self, spec: DeploymentSpec) -> Deployment:
        params, info = spec.litellm_params, spec.model_info
        provider, model = params.provider_and_model()
        assert provider is not None  # validation rejects unknown providers
        extra = params.extra
        if self.config.litellm_settings.modify_params and "modify_params" not in extra:
            extra = {**extra, "modify_params": True}  # LiteLLM's global setting, per deployment here
        return Deployment(
            id="",
            group=spec.model_name,
            provider=provider,
            model=model,
            litellm_model=params.model,
            api_base=_first(params.api_base, self._env_default(DEFAULT_API_BASE_ENV, provider)),
            api_key=_first(params.api_key, self._env_default(DEFAULT_API_KEY_ENV, provider)),
            api_version=_first(params.api_version, self._env_default(DEFAULT_API_VERSION_ENV, provider)),
            organization=params.organization,
            timeout=params.timeout,
            stream_timeout=params.stream_timeout,
            max_retries=params.max_retries,
            num_retries=params.num_retries,
            rpm=params.rpm,
            tpm=params.tpm,
            weight=params.weight,
            order=params.order,
            cooldown_time=params.cooldown_time,
            tags=params.tags,
            region_name=params.region_name,
            mock_response=deep_freeze(params.mock_response),
            drop_params=params.drop_params,
            extra=deep_freeze(extra) if extra else EMPTY,
            info=ModelInfo(
                max_input_tokens=info.max_input_tokens,
                max_output_tokens=info.max_output_tokens,
                input_cost_per_token=_first(info.input_cost_per_token, params.input_cost_per_token),
                output_cost_per_token=_first(info.output_cost_per_token, params.output_cost_per_token),
                base_model=info.base_model,
                mode=info.mode,
                extra=deep_freeze(info.model_extra) if info.model_extra else EMPTY,
            ),
        )

    def _env_default(self, table: Mapping[str, str], provider: str) -> str | None:
        variable = table.get(provider)
        return (self.env.get(variable) or None) if variable else None

    def _prepare(self, index: int, deployment: Deployment) -> Deployment:
        """Let the provider's adapter precompute URLs and headers (wildcards are prepared per request)."""
        if "*" in deployment.model:
            return deployment
        from routerd.providers.base import get_adapter

        try:
            adapter = get_adapter(deployment.provider)
        except KeyError:
            return deployment  # no adapter for this provider (yet): it is prepared on first use
        try:
            prepared = adapter.prepare(deployment)
        except ConfigError as exc:
            for problem in exc.issues or [exc]:
                self._error(("model_list", index, "litellm_params"), str(problem))
            return deployment
        except Exception as exc:  # an adapter refusing a deployment must not crash a reload
            self._error(("model_list", index, "litellm_params"), f"provider {deployment.provider}: {exc}")
            return deployment
        return dataclasses.replace(deployment, prepared=prepared)

    def _error(self, path: YamlPath, message: str) -> None:
        self.errors.append(self.loaded.marks.issue(path, message))

    # -- settings -----------------------------------------------------------------------------------

    def _server(self) -> ServerSettings:
        general, litellm = self.config.general_settings, self.config.litellm_settings
        callbacks = [
            *(litellm.callbacks or ()),
            *(litellm.success_callback or ()),
            *(litellm.failure_callback or ()),
        ]
        defaults = ServerSettings()
        return ServerSettings(
            master_key=general.master_key,
            max_request_size_mb=_first(general.max_request_size_mb, defaults.max_request_size_mb),
            metrics_require_auth=_first(general.metrics_require_auth, defaults.metrics_require_auth),
            callbacks=tuple(dict.fromkeys(callbacks)),
            redis_url=redis_url(self.config.router_settings),
            redis_startup_nodes=tuple(
                (node.host, node.port) for node in self.config.router_settings.redis_startup_nodes or ()
            ),
            redis_password=self.config.router_settings.redis_password,
            host=general.host,
            port=general.port,
            workers=general.workers,
        )

    def _provider_settings(self, spec: ProviderSettingsSpec) -> ProviderSettings:
        provider = spec.custom_llm_provider
        return ProviderSettings(
            custom_llm_provider=provider,
            api_key=_first(spec.api_key, self._env_default(DEFAULT_API_KEY_ENV, provider)),
            api_base=_first(spec.api_base, self._env_default(DEFAULT_API_BASE_ENV, provider)),
            api_version=_first(spec.api_version, self._env_default(DEFAULT_API_VERSION_ENV, provider)),
            organization=spec.organization,
            vertex_project=spec.vertex_project,
            vertex_location=spec.vertex_location,
            vertex_credentials=spec.vertex_credentials,
            extra=deep_freeze(spec.extra) if spec.extra else EMPTY,
        )


def build_policy(
    router: RouterSettings, litellm: LiteLLMSettings, aliases: Mapping[str, str] | None = None
) -> RouterPolicy:
    """``router_settings`` merged over the router-relevant ``litellm_settings``, defaults applied.

    Names in fallbacks are resolved through ``aliases`` (already flattened), so the router finds a
    group's fallbacks under the group's own name.
    """
    d = RouterPolicy()
    aliases = aliases or {}

    def fallbacks(
        low: Mapping[str, tuple[str, ...]] | None, high: Mapping[str, tuple[str, ...]] | None
    ) -> Mapping[str, tuple[str, ...]]:
        return _merge_fallbacks(low, high, aliases)

    retry = router.retry_policy
    fails = router.allowed_fails_policy
    return RouterPolicy(
        routing_strategy=_first(router.routing_strategy, d.routing_strategy),
        routing_strategy_args=deep_freeze(router.routing_strategy_args or {}),
        num_retries=_first(router.num_retries, litellm.num_retries, d.num_retries),
        retry_policy=RetryPolicy(
            bad_request=retry.BadRequestErrorRetries,
            authentication=retry.AuthenticationErrorRetries,
            timeout=retry.TimeoutErrorRetries,
            rate_limit=retry.RateLimitErrorRetries,
            content_policy=retry.ContentPolicyViolationErrorRetries,
            internal_server=retry.InternalServerErrorRetries,
        )
        if retry
        else d.retry_policy,
        allowed_fails=_first(router.allowed_fails, litellm.allowed_fails, d.allowed_fails),
        allowed_fails_policy=AllowedFailsPolicy(
            bad_request=fails.BadRequestErrorAllowedFails,
            authentication=fails.AuthenticationErrorAllowedFails,
            timeout=fails.TimeoutErrorAllowedFails,
            rate_limit=fails.RateLimitErrorAllowedFails,
            content_policy=fails.ContentPolicyViolationErrorAllowedFails,
            internal_server=fails.InternalServerErrorAllowedFails,
        )
        if fails
        else d.allowed_fails_policy,
        cooldown_time=_first(router.cooldown_time, litellm.cooldown_time, d.cooldown_time),
        max_cooldown_time=_first(router.max_cooldown_time, d.max_cooldown_time),
        disable_cooldowns=_first(router.disable_cooldowns, d.disable_cooldowns),
        timeout=_first(router.timeout, litellm.request_timeout, d.timeout),
        stream_timeout=_first(router.stream_timeout, d.stream_timeout),
        retry_after=_first(router.retry_after, d.retry_after),
        backoff_base=_first(router.backoff_base, d.backoff_base),
        backoff_cap=_first(router.backoff_cap, d.backoff_cap),
        fallbacks=fallbacks(litellm.fallbacks, router.fallbacks),
        context_window_fallbacks=fallbacks(litellm.context_window_fallbacks, router.context_window_fallbacks),
        content_policy_fallbacks=fallbacks(litellm.content_policy_fallbacks, router.content_policy_fallbacks),
        default_fallbacks=tuple(
            dict.fromkeys(
                aliases.get(n, n)
                for n in _first(router.default_fallbacks, litellm.default_fallbacks, d.default_fallbacks)
            )
        ),
        max_fallbacks=_first(router.max_fallbacks, litellm.max_fallbacks, d.max_fallbacks),
        drop_params=_first(litellm.drop_params, d.drop_params),
        enable_pre_call_checks=_first(router.enable_pre_call_checks, d.enable_pre_call_checks),
    )


def _merge_fallbacks(
    low: Mapping[str, tuple[str, ...]] | None,
    high: Mapping[str, tuple[str, ...]] | None,
    aliases: Mapping[str, str],
) -> Mapping[str, tuple[str, ...]]:
    """``high`` over ``low`` per source group, every name resolved through ``aliases``.

    A group named both directly and through an alias keeps the entry written with its own name.
    """
    merged: dict[str, tuple[str, ...]] = {}
    for layer in (low or {}, high or {}):
        resolved: dict[str, tuple[str, ...]] = {}
        for source, targets in sorted(layer.items(), key=lambda item: item[0] in aliases):
            group = aliases.get(source, source)
            if group not in resolved:
                resolved[group] = tuple(dict.fromkeys(aliases.get(t, t) for t in targets))
        merged.update(resolved)
    return FrozenDict(merged)


def _aliases(router: RouterSettings, groups: set[str]) -> tuple[dict[str, str], set[str]]:
    """``model_group_alias`` with chains (alias -> alias -> group) flattened to one hop."""
    declared = {alias: spec.model for alias, spec in (router.model_group_alias or {}).items()}
    hidden = {alias for alias, spec in (router.model_group_alias or {}).items() if spec.hidden}
    flat = {}
    for alias, target in declared.items():
        seen = {alias}
        while target in declared and target not in groups and target not in seen:
            seen.add(target)
            target = declared[target]
        flat[alias] = target
    return flat, hidden


def redis_url(router: RouterSettings) -> str | None:
    """``redis_url``, or one built from ``redis_host`` / ``redis_port`` / ``redis_password`` / ``redis_db``."""
    if router.redis_url:
        return router.redis_url
    if not router.redis_host:
        return None
    auth = f":{quote(router.redis_password, safe='')}@" if router.redis_password else ""
    return f"redis://{auth}{router.redis_host}:{router.redis_port or 6379}/{router.redis_db or 0}"


def assign_ids(deployments: Iterable[Deployment], explicit: Iterable[str | None]) -> list[str]:
    """Ids for ``deployments``: the explicit one when given, else :func:`deployment_digest`.

    Validation has rejected duplicate explicit ids. Two deployments identical in everything that
    identifies them get ``-2``, ``-3``... suffixes in file order.
    """
    deployments, explicit = list(deployments), list(explicit)
    taken = {ident for ident in explicit if ident is not None}
    out: list[str] = []
    for deployment, ident in zip(deployments, explicit, strict=True):
        if ident is None:
            base = deployment_digest(deployment)
            ident, n = base, 1
            while ident in taken:
                n += 1
                ident = f"{base}-{n}"
            taken.add(ident)
        out.append(ident)
    return out


def deployment_digest(deployment: Deployment) -> str:
    """A short digest of what identifies a deployment's upstream endpoint (see the module docstring)."""
    identity = {
        "group": deployment.group,
        "provider": deployment.provider,
        "model": deployment.model,
        "api_base": deployment.api_base,
        "api_version": deployment.api_version,
        "organization": deployment.organization,
        "region_name": deployment.region_name,
        "api_key": _digest(deployment.api_key) if deployment.api_key is not None else None,
        "extra": _canonical(deployment.extra),
    }
    return hashlib.sha256(_dumps(identity)).hexdigest()[:ID_LENGTH]


def content_hash(parts: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON form of the compiled table's parts."""
    return hashlib.sha256(_dumps(_canonical(parts))).hexdigest()


def _canonical(value: Any, key: str | None = None) -> Any:
    """A JSON-ready, order-independent form of compiled values; secrets become digests."""
    if key is not None and is_secret_key(key) and isinstance(value, str):
        return _digest(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _canonical(getattr(value, f.name), f.name)
            for f in dataclasses.fields(value)
            if f.name != "prepared"
        }
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, str(k)) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _first(*values: Any) -> Any:
    """The first value that is not None (the last one is the default)."""
    for value in values:
        if value is not None:
            return value
    return values[-1]
