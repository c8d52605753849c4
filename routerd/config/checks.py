"""Cross-checks of a validated config: the problems no single field's type can express.

Unknown providers, groups whose weights sum to zero, duplicate deployment ids, aliases and fallbacks
that name no model group, fallback and alias cycles, duplicate provider entries in files/fine-tuning
settings; and warnings for settings that will not do what they seem to (unknown callbacks, a
deployment without credentials).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from routerd.access.spec import KeySpec, TeamSpec
from routerd.config import keys
from routerd.config.issues import Issue, YamlPath, format_path, suggestion
from routerd.config.loader import LoadedConfig
from routerd.config.models import (
    DeploymentSpec,
    GeneralSettings,
    LiteLLMSettings,
    ProviderSettingsSpec,
    RouterSettings,
)
from routerd.guardrails.config import GuardrailSpec
from routerd.providers import cache_points
from routerd.providers.infer import DEFAULT_API_KEY_ENV, PROVIDER_PREFIXES

FALLBACK_KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
SETTINGS_SECTIONS = ("router_settings", "litellm_settings")

# litellm_params keys that authenticate without an api_key (Azure AD, cloud credentials)
_KEYLESS_AUTH = frozenset(
    {"azure_ad_token", "azure_ad_token_provider", "client_secret", "azure_password", "vertex_credentials"}
)


@dataclass
class Parts:
    """The separately validated pieces of a file; a piece is None (or missing from a list) if invalid."""

    loaded: LoadedConfig
    raw: dict[str, Any]
    deployments: list[tuple[int, DeploymentSpec]] = field(default_factory=list)
    raw_group_names: list[str] = field(default_factory=list)
    router: RouterSettings | None = None
    litellm: LiteLLMSettings | None = None
    general: GeneralSettings | None = None
    files: list[tuple[int, ProviderSettingsSpec]] = field(default_factory=list)
    finetune: list[tuple[int, ProviderSettingsSpec]] = field(default_factory=list)
    guardrails: list[tuple[int, GuardrailSpec]] = field(default_factory=list)
    keys: list[tuple[int, KeySpec]] = field(default_factory=list)
    teams: list[tuple[int, TeamSpec]] = field(default_factory=list)

    def issue(self, path: YamlPath, message: str, *, warning: bool = False, at_key: bool = False) -> Issue:
        return self.loaded.marks.issue(
            path, message, severity="warning" if warning else "error", at_key=at_key
        )


def cross_check(parts: Parts) -> list[Issue]:
    """Every cross-field problem of ``parts``."""
    names = GroupNames.build(parts)
    found = [
        *_providers(parts),
        *_wildcards(parts),
        *_weights(parts),
        *_duplicate_ids(parts),
        *_aliases(parts, names),
        *_azure_aliases(parts, names),
        *_fallbacks(parts, names),
        *_provider_settings(parts),
        *_callbacks(parts),
        *_redis(parts),
        *_credentials(parts),
        *_cache_points(parts),
        *_backoff(parts),
        *_empty(parts),
    ]
    # a reference to an unset variable was reported by the loader; its placeholder text proves nothing
    unresolved = [format_path(p) for p in parts.loaded.unresolved_paths]
    return [i for i in found if not any(_within(i.path, u) for u in unresolved)]


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((ancestor + ".", ancestor + "["))


@dataclass(frozen=True)
class GroupNames:
    """The model names a fallback or alias may point at: groups, wildcard patterns, aliases."""

    exact: frozenset[str]
    wildcards: tuple[str, ...]
    aliases: dict[str, str]

    @classmethod
    def build(cls, parts: Parts) -> GroupNames:
        names = parts.raw_group_names
        aliases = {}
        if parts.router is not None and parts.router.model_group_alias:
            aliases = {alias: spec.model for alias, spec in parts.router.model_group_alias.items()}
        return cls(
            exact=frozenset(n for n in names if "*" not in n),
            wildcards=tuple(dict.fromkeys(n for n in names if "*" in n)),
            aliases=aliases,
        )

    def is_group(self, name: str) -> bool:
        return name in self.exact or any(fnmatch.fnmatchcase(name, w) for w in self.wildcards)

    def resolves(self, name: str) -> bool:
        return name in self.aliases or self.is_group(name)

    def canonical(self, name: str) -> str:
        """``name`` with aliases followed (cycles stop where they close)."""
        seen = {name}
        while name in self.aliases and name not in self.exact:
            name = self.aliases[name]
            if name in seen:
                break
            seen.add(name)
        return name

    def candidates(self) -> list[str]:
        return [*self.exact, *self.aliases]


def _params_path(index: int, *rest: str) -> YamlPath:
    return ("model_list", index, "litellm_params", *rest)


def _providers(parts: Parts) -> Iterator[Issue]:
    """Deployments whose provider routerd does not know: an error (a call to one could only fail),
    reported once per unknown provider name, at its first use, with the others listed."""
    unknown: dict[str, list[tuple[YamlPath, str]]] = {}
    for index, spec in parts.deployments:
        params = spec.litellm_params
        provider, model = params.provider_and_model()
        if provider is not None:
            continue
        if params.custom_llm_provider is not None:
            name = params.custom_llm_provider
            unknown.setdefault(name, []).append((_params_path(index, "custom_llm_provider"), ""))
            continue
        prefix, slash, _ = params.model.partition("/")
        if slash:
            unknown.setdefault(prefix, []).append((_params_path(index, "model"), f" in {params.model!r}"))
        else:
            yield parts.issue(
                _params_path(index, "model"),
                f"cannot tell the provider of {model!r}; write it as provider/model, e.g. openai/{model}",
            )
    for name, uses in unknown.items():
        path, shown = uses[0]
        others = [format_path(p) for p, _ in uses[1:]]
        also = (
            f" (also used by {len(others)} more: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})"
        )
        yield parts.issue(
            path,
            f"unknown provider {name!r}{shown}"
            + suggestion(name, PROVIDER_PREFIXES)
            + (also if others else "")
            + "; routerd serves: "
            + ", ".join(sorted(PROVIDER_PREFIXES))
            + ". For an OpenAI-compatible server write openai/<model> with api_base: <its URL>",
        )


def _wildcards(parts: Parts) -> Iterator[Issue]:
    # a wildcard upstream model is filled in from the requested name, which only a wildcard group has
    for index, spec in parts.deployments:
        model = spec.litellm_params.model
        if "*" in model and "*" not in spec.model_name:
            yield parts.issue(
                _params_path(index, "model"),
                f"{model!r} is a wildcard, so model_name must be one too (e.g. {model.split('/', 1)[0]}/*)",
            )


def _weights(parts: Parts) -> Iterator[Issue]:
    by_group: dict[str, list[tuple[int, DeploymentSpec]]] = {}
    for index, spec in parts.deployments:
        by_group.setdefault(spec.model_name, []).append((index, spec))
    for group, members in by_group.items():
        weights = [spec.litellm_params.weight for _, spec in members]
        if all(w is not None for w in weights) and sum(w or 0.0 for w in weights) == 0:
            first = members[0][0]
            where = ", ".join(f"model_list[{i}]" for i, _ in members)
            yield parts.issue(
                _params_path(first, "weight"),
                f"the weights of group {group!r} sum to zero ({where}); no deployment could be chosen",
            )


def _duplicate_ids(parts: Parts) -> Iterator[Issue]:
    first_use: dict[str, int] = {}
    for index, spec in parts.deployments:
        ident = spec.model_info.id
        if ident is None:
            continue
        if ident in first_use:
            other = first_use[ident]
            where = parts.loaded.marks.value(("model_list", other, "model_info", "id"))
            yield parts.issue(
                ("model_list", index, "model_info", "id"),
                f"duplicate deployment id {ident!r} (also used by model_list[{other}] at {where})",
            )
        else:
            first_use[ident] = index


def _aliases(parts: Parts, names: GroupNames) -> Iterator[Issue]:
    if parts.router is None or not parts.router.model_group_alias:
        return
    raw = _raw_at(parts.raw, ("router_settings", "model_group_alias"))
    reported: set[frozenset[str]] = set()
    for alias, spec in parts.router.model_group_alias.items():
        path: YamlPath = ("router_settings", "model_group_alias", alias)
        if isinstance(raw, dict) and isinstance(raw.get(alias), dict):
            path = (*path, "model")
        target = spec.model
        if not names.resolves(target):
            yield parts.issue(
                path, f"alias target {target!r} names no model group" + suggestion(target, names.candidates())
            )
            continue
        chain = [alias]
        current = target
        while current in names.aliases and current not in names.exact and current not in chain:
            chain.append(current)
            current = names.aliases[current]
        if current in chain:
            cycle = [*chain[chain.index(current) :], current]
            members = frozenset(cycle)
            if members not in reported:
                reported.add(members)
                yield parts.issue(path, "alias cycle: " + " -> ".join(cycle))
            continue
        if alias in names.exact:
            yield parts.issue(
                ("router_settings", "model_group_alias", alias),
                f"alias {alias!r} hides the model group of the same name; requests for it go to {target!r}",
                warning=True,
                at_key=True,
            )


def _azure_aliases(parts: Parts, names: GroupNames) -> Iterator[Issue]:
    """``router_settings.azure_deployment_aliases``: each target must be a model routerd serves."""
    if parts.router is None or not parts.router.azure_deployment_aliases:
        return
    for name, target in parts.router.azure_deployment_aliases.items():
        if not names.resolves(target):
            yield parts.issue(
                ("router_settings", "azure_deployment_aliases", name),
                f"Azure deployment alias {name!r} names no model group: {target!r}"
                + suggestion(target, names.candidates()),
            )
        elif names.resolves(name):
            yield parts.issue(
                ("router_settings", "azure_deployment_aliases", name),
                f"Azure deployment alias {name!r} is also a model name routerd serves; that model wins",
                warning=True,
                at_key=True,
            )


def fallback_entries(raw: Any, base: YamlPath) -> Iterator[tuple[str, YamlPath, list[tuple[str, YamlPath]]]]:
    """``(source, source_key_path, [(target, target_path), ...])`` for a fallbacks value as written.

    Accepts both of LiteLLM's shapes: a list of one-key mappings and a plain mapping; a target list
    may be a single string.
    """
    items: list[tuple[YamlPath, dict[str, Any]]] = []
    if isinstance(raw, list):
        items = [((*base, i), item) for i, item in enumerate(raw) if isinstance(item, dict)]
    elif isinstance(raw, dict):
        items = [(base, raw)]
    for item_path, mapping in items:
        for source, targets in mapping.items():
            source_path = (*item_path, source)
            if isinstance(targets, str):
                listed = [(targets, source_path)]
            elif isinstance(targets, list):
                listed = [(t, (*source_path, i)) for i, t in enumerate(targets) if isinstance(t, str)]
            else:
                listed = []
            yield str(source), source_path, listed


def _fallbacks(parts: Parts, names: GroupNames) -> Iterator[Issue]:
    candidates = names.candidates()
    for kind in FALLBACK_KINDS:
        # router_settings wins over litellm_settings per source group (see the compiler)
        graph: dict[str, list[tuple[str, YamlPath]]] = {}
        for section in SETTINGS_SECTIONS:
            if _section_model(parts, section) is None:
                continue
            raw = _raw_at(parts.raw, (section, kind))
            for source, source_path, targets in fallback_entries(raw, (section, kind)):
                if not names.resolves(source):
                    yield parts.issue(
                        source_path,
                        f"fallbacks are given for {source!r}, which names no model group"
                        + suggestion(source, candidates),
                        at_key=True,
                    )
                for target, target_path in targets:
                    if not names.resolves(target):
                        yield parts.issue(
                            target_path,
                            f"fallback target {target!r} names no model group"
                            + suggestion(target, candidates),
                        )
                node = names.canonical(source)
                if node not in graph:
                    graph[node] = [(names.canonical(t), p) for t, p in targets if names.resolves(t)]
        yield from _cycles(parts, kind, graph)
    for section in SETTINGS_SECTIONS:
        if _section_model(parts, section) is None:
            continue
        for target, path in _strings_at(parts.raw, (section, "default_fallbacks")):
            if not names.resolves(target):
                yield parts.issue(
                    path, f"fallback target {target!r} names no model group" + suggestion(target, candidates)
                )


def _cycles(parts: Parts, kind: str, graph: dict[str, list[tuple[str, YamlPath]]]) -> Iterator[Issue]:
    """One warning per distinct cycle in a fallback graph, at the edge that closes it. Mutual fallbacks
    are legitimate in LiteLLM files; the executor's tried-group set and max_fallbacks bound them."""
    reported: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> Iterator[Issue]:
        stack.append(node)
        for target, path in graph.get(node, []):
            if target in stack:
                cycle = [*stack[stack.index(target) :], target]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    label = "fallback" if kind == "fallbacks" else kind
                    yield parts.issue(
                        path,
                        f"{label} cycle: "
                        + " -> ".join(cycle)
                        + "; allowed (as in LiteLLM): a call never tries a group twice and stops "
                        "after max_fallbacks groups",
                        warning=True,
                    )
            elif target not in done:
                yield from visit(target, stack)
        stack.pop()
        done.add(node)

    for start in list(graph):
        if start not in done:
            yield from visit(start, [])


def _provider_settings(parts: Parts) -> Iterator[Issue]:
    for name, entries in (("files_settings", parts.files), ("finetune_settings", parts.finetune)):
        first: dict[str, int] = {}
        for index, spec in entries:
            provider = spec.custom_llm_provider
            if provider in first:
                yield parts.issue(
                    (name, index, "custom_llm_provider"),
                    f"a second entry for provider {provider!r} (the first is {name}[{first[provider]}])",
                )
            else:
                first[provider] = index


def _callbacks(parts: Parts) -> Iterator[Issue]:
    if parts.litellm is None:
        return
    for key in ("callbacks", "success_callback", "failure_callback"):
        for name, path in _strings_at(parts.raw, ("litellm_settings", key)):
            # module.instance paths are loaded by the daemon at startup (routerd.integrations.proxy)
            if name not in keys.KNOWN_CALLBACKS and "." not in name:
                yield parts.issue(
                    path,
                    f"callback {name!r} is accepted but not acted on (routerd acts on: "
                    + ", ".join(sorted(keys.KNOWN_CALLBACKS))
                    + ", and module.instance paths of CustomLogger instances)",
                    warning=True,
                )


def _redis(parts: Parts) -> Iterator[Issue]:
    # Cluster nodes and a single-instance address together: say which one routerd uses.
    if _raw_at(parts.raw, ("router_settings", "redis_startup_nodes")) is None:
        return
    for key in ("redis_url", "redis_host"):
        if _raw_at(parts.raw, ("router_settings", key)) is not None:
            yield parts.issue(
                ("router_settings", key),
                "ignored: router_settings.redis_startup_nodes is set, so routerd connects to that "
                "Redis Cluster instead",
                warning=True,
                at_key=True,
            )


def _credentials(parts: Parts) -> Iterator[Issue]:
    env = parts.loaded.env
    for index, spec in parts.deployments:
        params = spec.litellm_params
        provider, _ = params.provider_and_model()
        if provider is None or provider in keys.KEYLESS_PROVIDERS or params.api_key is not None:
            continue
        if params.api_base is not None or _KEYLESS_AUTH.intersection(params.extra):
            continue  # a self-hosted endpoint or another way to authenticate
        variable = DEFAULT_API_KEY_ENV.get(provider)
        if variable is not None and variable not in env:
            yield parts.issue(
                _params_path(index),
                f"no api_key, and {variable} is not set; calls to this deployment will fail",
                warning=True,
            )


def _cache_points(parts: Parts) -> Iterator[Issue]:
    """``cache_control_injection_points``: well formed (an error otherwise: the call would fail), and
    acted on for the providers routerd injects cache_control for (a warning for the others)."""
    for index, spec in parts.deployments:
        points = spec.litellm_params.extra.get(cache_points.KEY)
        if points is None:
            continue
        path = _params_path(index, cache_points.KEY)
        for problem in cache_points.problems(points):
            yield parts.issue(path, f"{cache_points.KEY}{problem}" if problem.startswith("[") else problem)
        provider, _ = spec.litellm_params.provider_and_model()
        if provider is not None and provider not in CACHE_CONTROL_PROVIDERS:
            yield parts.issue(
                path,
                f"accepted but not acted on for provider {provider!r} (routerd injects cache_control for: "
                + ", ".join(sorted(CACHE_CONTROL_PROVIDERS))
                + ")",
                warning=True,
                at_key=True,
            )


#: Providers whose adapters apply ``cache_control_injection_points``.
CACHE_CONTROL_PROVIDERS = frozenset({"anthropic"})


def _backoff(parts: Parts) -> Iterator[Issue]:
    router = parts.router
    if router is None or router.backoff_base is None or router.backoff_cap is None:
        return
    if router.backoff_base > router.backoff_cap:
        yield parts.issue(
            ("router_settings", "backoff_base"),
            f"backoff_base ({router.backoff_base}) is larger than backoff_cap ({router.backoff_cap})",
        )


def _empty(parts: Parts) -> Iterator[Issue]:
    if not parts.raw.get("model_list"):
        yield parts.issue(
            ("model_list",), "no deployments: every call will fail with 'model not found'", warning=True
        )


def _section_model(parts: Parts, section: str) -> RouterSettings | LiteLLMSettings | None:
    return parts.router if section == "router_settings" else parts.litellm


def _raw_at(root: Any, path: YamlPath) -> Any:
    node = root
    for part in path:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _strings_at(root: Any, path: YamlPath) -> list[tuple[str, YamlPath]]:
    """The strings of a "string or list of strings" value, each with its own path."""
    raw = _raw_at(root, path)
    if isinstance(raw, str):
        return [(raw, path)]
    if isinstance(raw, list):
        return [(item, (*path, i)) for i, item in enumerate(raw) if isinstance(item, str)]
    return []
