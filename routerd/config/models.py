"""Stage 2 schema: pydantic models of the routing file, in LiteLLM's ``config.yaml`` shape.

The models are frozen. Sections whose format is routerd's own forbid unknown keys; ``litellm_params``,
``model_info`` and the files/fine-tuning provider entries allow them, because LiteLLM passes
provider-specific keys through (the validator still rejects unknown keys that look like typos of
known ones). ``schemas/config.schema.json`` is generated from these models (``routerd schema``), so
field descriptions are what editors show.

Fields of the settings sections default to None, meaning "not set in the file"; the compiler applies
routerd's defaults (see :class:`routerd.config.table.RouterPolicy`) and merges ``litellm_settings``
into ``router_settings`` (``router_settings`` wins).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from routerd.access.periods import parse_duration
from routerd.access.spec import KeySpec, TeamSpec
from routerd.cache.spec import CacheParams
from routerd.config.frozen import REDACTED, is_secret_key
from routerd.guardrails.config import GuardrailSpec
from routerd.providers.infer import PROVIDER_PREFIXES, split_model

NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]

Strategy = Literal[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
    "order",
]
FileProvider = Literal["openai", "azure", "vertex_ai"]

# ``coerce_numbers_to_str``: ``organization: 12345`` or ``model_name: 4`` are names, not numbers
_CLOSED = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, coerce_numbers_to_str=True)
_OPEN = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True, coerce_numbers_to_str=True)


class _Model(BaseModel):
    """Base of every config model: its repr never shows a credential (api_key, master_key, ...)."""

    model_config = _CLOSED

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (REDACTED if is_secret_key(name) and value is not None else value)


def _fallbacks_from_yaml(value: Any) -> Any:
    """LiteLLM writes fallbacks as a list of one-key mappings (``[{"gpt-4": ["gpt-3.5"]}]``); a plain
    mapping is accepted too. Both become one mapping; a single target string becomes a one-item list."""
    if isinstance(value, list):
        merged: dict[Any, Any] = {}
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise ValueError(f"item {index} must be a mapping like {{model-group: [fallback groups]}}")
            for source, targets in item.items():
                if source in merged:
                    raise ValueError(f"fallbacks for {source!r} are given twice")
                merged[source] = targets
        value = merged
    if isinstance(value, Mapping):
        return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
    return value


_FALLBACKS_SCHEMA = {
    "description": "Fallback groups per model group: a list of one-key mappings "
    '(`[{"gpt-4": ["gpt-3.5-turbo", "claude-3"]}]`, as LiteLLM writes it) or a plain mapping.',
    "anyOf": [
        {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    ],
}

#: A fallback mapping, normalised to ``{group: (target, ...)}``.
Fallbacks = Annotated[
    dict[str, tuple[str, ...]],
    BeforeValidator(_fallbacks_from_yaml),
    WithJsonSchema(_FALLBACKS_SCHEMA),
]


def _id_to_str(value: Any) -> Any:
    # ``id: 1`` is a common way to write an id; it is a name, not a number
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _json_if_mapping(value: Any) -> Any:
    # vertex_credentials may be the service-account JSON inline, as a mapping
    return json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else value


def _scalar_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


def _str_to_tuple(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class LiteLLMParams(_Model):
    """``litellm_params`` of a deployment: where to send calls and how.

    Keys not listed here are provider specific (``vertex_project``, ``aws_region_name``, mock fault
    settings, default call parameters such as ``temperature``) and pass through to the provider adapter.
    """

    model_config = _OPEN

    model: str = Field(
        min_length=1,
        description="Upstream model as `provider/model-name` (e.g. `openai/gpt-4o`, `azure/my-deployment`, "
        "`anthropic/*`). Bare OpenAI, Claude and Gemini names are recognised without a prefix.",
    )
    custom_llm_provider: str | None = Field(
        default=None, description="The provider, when `model` carries no `provider/` prefix."
    )
    api_key: str | None = Field(
        default=None,
        description="Upstream API key; usually `os.environ/NAME`. Defaults to the provider's usual "
        "environment variable (e.g. OPENAI_API_KEY).",
    )
    api_base: str | None = Field(default=None, description="Upstream base URL.")
    api_version: str | None = Field(default=None, description="API version (Azure).")
    organization: str | None = Field(default=None, description="OpenAI organization id.")
    timeout: PosFloat | None = Field(default=None, description="Seconds a call to this deployment may take.")
    stream_timeout: PosFloat | None = Field(
        default=None, description="Seconds a streamed call to this deployment may take."
    )
    max_retries: NonNegInt | None = Field(
        default=None, description="Retries of the HTTP call itself, inside one attempt."
    )
    num_retries: NonNegInt | None = Field(
        default=None, description="Router retries for calls served by this deployment."
    )
    rpm: NonNegInt | None = Field(
        default=None, description="Requests per minute this deployment may receive."
    )
    tpm: NonNegInt | None = Field(default=None, description="Tokens per minute this deployment may receive.")
    weight: NonNegFloat | None = Field(
        default=None, description="Relative share of traffic within its group (simple-shuffle)."
    )
    order: NonNegInt | None = Field(
        default=None,
        description="Priority tier: lower `order` is used first; higher tiers only when lower are unavailable.",
    )
    cooldown_time: NonNegFloat | None = Field(
        default=None, description="Seconds this deployment cools down after too many failures."
    )
    tags: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] = Field(
        default=(), description="Free-form tags."
    )
    region_name: str | None = Field(default=None, description="Region of the deployment (informational).")
    input_cost_per_token: NonNegFloat | None = Field(default=None, description="USD per prompt token.")
    output_cost_per_token: NonNegFloat | None = Field(default=None, description="USD per completion token.")
    mock_response: Any = Field(default=None, description="A fixed answer (mock provider, tests).")
    drop_params: bool | None = Field(
        default=None, description="Drop parameters this provider does not support instead of failing."
    )

    def provider_and_model(self) -> tuple[str | None, str]:
        """The canonical provider name and the upstream model (prefix stripped); provider None if unknown."""
        if self.custom_llm_provider is not None:
            provider = PROVIDER_PREFIXES.get(self.custom_llm_provider)
            prefix = f"{self.custom_llm_provider}/"
            model = self.model[len(prefix) :] if self.model.startswith(prefix) else self.model
            return provider, model
        return split_model(self.model)

    @property
    def extra(self) -> dict[str, Any]:
        """The provider-specific keys (everything not declared above)."""
        return dict(self.model_extra or {})


class ModelInfoSpec(_Model):
    """``model_info``: the deployment's id, limits and prices. Other keys are kept as metadata."""

    model_config = _OPEN

    id: Annotated[str | None, BeforeValidator(_id_to_str)] = Field(
        default=None,
        description="Stable deployment id. Without it routerd derives one from the deployment's parameters.",
    )
    max_input_tokens: NonNegInt | None = Field(default=None, description="Context window in tokens.")
    max_output_tokens: NonNegInt | None = Field(default=None, description="Maximum completion tokens.")
    input_cost_per_token: NonNegFloat | None = Field(default=None, description="USD per prompt token.")
    output_cost_per_token: NonNegFloat | None = Field(default=None, description="USD per completion token.")
    base_model: str | None = Field(default=None, description="The underlying model (for prices and limits).")
    mode: str | None = Field(default=None, description="`chat`, `completion`, `embedding`, ...")
    access_groups: tuple[str, ...] = Field(
        default=(), description="Names a client key's `models` may list to allow this deployment's group."
    )


class DeploymentSpec(_Model):
    """One entry of ``model_list``."""

    model_config = _CLOSED

    model_name: str = Field(
        min_length=1,
        description="The public model name clients ask for (the group). `provider/*` wildcards allowed.",
    )
    litellm_params: LiteLLMParams
    model_info: ModelInfoSpec = Field(default_factory=ModelInfoSpec)

    @model_validator(mode="before")
    @classmethod
    def _empty_model_info(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model_info" in data and data["model_info"] is None:
            data = {k: v for k, v in data.items() if k != "model_info"}
        return data


class RetryPolicySpec(_Model):
    """``router_settings.retry_policy``: retries per error class, in LiteLLM's key names."""

    model_config = _CLOSED

    BadRequestErrorRetries: NonNegInt | None = None
    AuthenticationErrorRetries: NonNegInt | None = None
    TimeoutErrorRetries: NonNegInt | None = None
    RateLimitErrorRetries: NonNegInt | None = None
    ContentPolicyViolationErrorRetries: NonNegInt | None = None
    InternalServerErrorRetries: NonNegInt | None = None


class AllowedFailsPolicySpec(_Model):
    """``router_settings.allowed_fails_policy``: failures tolerated per error class before a cooldown."""

    model_config = _CLOSED

    BadRequestErrorAllowedFails: NonNegInt | None = None
    AuthenticationErrorAllowedFails: NonNegInt | None = None
    TimeoutErrorAllowedFails: NonNegInt | None = None
    RateLimitErrorAllowedFails: NonNegInt | None = None
    ContentPolicyViolationErrorAllowedFails: NonNegInt | None = None
    InternalServerErrorAllowedFails: NonNegInt | None = None


def _alias_from_str(value: Any) -> Any:
    return {"model": value} if isinstance(value, str) else value


class AliasSpec(_Model):
    """A ``model_group_alias`` target; a plain string is short for ``{model: <string>}``."""

    model_config = _CLOSED

    model: str = Field(min_length=1, description="The model group the alias stands for.")
    hidden: bool = Field(default=False, description="Keep the alias out of /v1/models.")


Alias = Annotated[
    AliasSpec,
    BeforeValidator(_alias_from_str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "The model group the alias stands for."},
                {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string", "description": "The model group the alias stands for."},
                        "hidden": {"type": "boolean", "description": "Keep the alias out of /v1/models."},
                    },
                    "required": ["model"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class _FallbackSettings(_Model):
    """Keys ``router_settings`` and ``litellm_settings`` share."""

    model_config = _CLOSED

    num_retries: NonNegInt | None = Field(default=None, description="Retries per call (default 2).")
    allowed_fails: NonNegInt | None = Field(
        default=None, description="Failures tolerated per deployment before a cooldown (default 3)."
    )
    cooldown_time: NonNegFloat | None = Field(
        default=None, description="Seconds a failing deployment cools down (default 60)."
    )
    fallbacks: Fallbacks | None = Field(default=None, description="Groups to try when a group fails.")
    context_window_fallbacks: Fallbacks | None = Field(
        default=None, description="Groups to try when the prompt does not fit a group's context window."
    )
    content_policy_fallbacks: Fallbacks | None = Field(
        default=None, description="Groups to try when a group refuses on content policy."
    )
    default_fallbacks: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] | None = Field(
        default=None, description="Groups to try for any group without fallbacks of its own."
    )
    max_fallbacks: NonNegInt | None = Field(
        default=None, description="Most fallback groups tried per call (default 5)."
    )


class RedisNode(BaseModel):
    """One Redis Cluster startup node (``router_settings.redis_startup_nodes`` entries)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 6379


class RouterSettings(_FallbackSettings):
    """``router_settings``: how deployments are chosen, retried, cooled down and failed over."""

    routing_strategy: Strategy | None = Field(
        default=None, description="How a deployment is picked (default simple-shuffle)."
    )
    routing_strategy_args: dict[str, Any] | None = Field(
        default=None, description="Strategy options, e.g. `lowest_latency_buffer`, `ttl`."
    )
    retry_policy: RetryPolicySpec | None = Field(default=None, description="Retries per error class.")
    allowed_fails_policy: AllowedFailsPolicySpec | None = Field(
        default=None, description="Failures tolerated per error class before a cooldown."
    )
    max_cooldown_time: NonNegFloat | None = Field(
        default=None, description="Cap on a cooldown taken from an upstream Retry-After (default 300)."
    )
    disable_cooldowns: bool | None = Field(default=None, description="Never cool deployments down.")
    timeout: PosFloat | None = Field(
        default=None, description="Seconds a call may take, retries included (default 600)."
    )
    stream_timeout: PosFloat | None = Field(default=None, description="Seconds a streamed call may take.")
    retry_after: NonNegFloat | None = Field(
        default=None, description="Minimum seconds before a retry (default 0)."
    )
    backoff_base: PosFloat | None = Field(
        default=None,
        description="First retry backoff in seconds, doubled per retry, full jitter (default 0.5).",
    )
    backoff_cap: PosFloat | None = Field(
        default=None, description="Longest retry backoff in seconds (default 8)."
    )
    model_group_alias: dict[str, Alias] | None = Field(
        default=None,
        description="Other names for model groups: `{alias: group}` or `{alias: {model, hidden}}`.",
    )
    enable_pre_call_checks: bool | None = Field(
        default=None, description="Skip deployments whose max_input_tokens the prompt exceeds."
    )
    azure_deployment_aliases: dict[str, Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        description="routerd: Azure deployment names (`/openai/deployments/{name}/...`) -> model group.",
    )
    redis_host: str | None = Field(default=None, description="Redis host for state shared between replicas.")
    redis_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(default=None, description="Redis port.")
    redis_password: str | None = Field(default=None, description="Redis password.")
    redis_db: NonNegInt | None = Field(default=None, description="Redis database number.")
    redis_url: str | None = Field(default=None, description="Redis URL; overrides host/port/password/db.")
    redis_startup_nodes: list[RedisNode] | None = Field(
        default=None, description="Redis Cluster nodes to discover the cluster from (overrides redis_url)."
    )


class LiteLLMSettings(_FallbackSettings):
    """``litellm_settings``: the router-relevant keys; other LiteLLM keys are accepted with a warning."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        coerce_numbers_to_str=True,
        json_schema_extra={"additionalProperties": True},
    )

    request_timeout: PosFloat | None = Field(
        default=None, description="Seconds a call may take (router timeout)."
    )
    drop_params: bool | None = Field(
        default=None, description="Drop parameters a provider does not support instead of failing."
    )
    modify_params: bool | None = Field(
        default=None,
        description="Fix messages a provider would refuse (every deployment's `litellm_params.modify_params`).",
    )
    callbacks: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] | None = Field(
        default=None, description='Integrations to enable; routerd acts on `["prometheus"]`.'
    )
    success_callback: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] | None = Field(
        default=None, description="Like `callbacks` (LiteLLM's older spelling)."
    )
    failure_callback: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] | None = Field(
        default=None, description="Like `callbacks` (LiteLLM's older spelling)."
    )
    max_end_user_budget: NonNegFloat | None = Field(
        default=None, description="USD each end user (the request's `user` field) may spend per period."
    )
    end_user_budget_duration: str | None = Field(
        default=None,
        description="routerd: the end-user budget's period (1d, 30d, 1mo ...); absent: no reset.",
    )
    cache: bool | None = Field(default=None, description="Turn on response caching (see `cache_params`).")
    cache_params: CacheParams | None = Field(default=None, description="How and where answers are cached.")
    turn_off_message_logging: bool | None = Field(
        default=None,
        description="Callbacks and traces get the calls without prompt and answer text (placeholders instead).",
    )

    @field_validator("end_user_budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class GeneralSettings(_Model):
    """``general_settings``: the daemon's own settings; other LiteLLM proxy keys are accepted with a warning."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        coerce_numbers_to_str=True,
        json_schema_extra={"additionalProperties": True},
    )

    master_key: str | None = Field(
        default=None, description="The key clients must send (Bearer or api-key); usually `os.environ/NAME`."
    )
    max_request_size_mb: PosFloat | None = Field(
        default=None, description="Largest request body in MB (default 10)."
    )
    metrics_require_auth: bool | None = Field(default=None, description="/metrics needs the master key.")
    host: str | None = Field(
        default=None, description="Listen address (routerd; --host and ROUTERD_HOST win). Needs a restart."
    )
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Listen port (routerd; --port and ROUTERD_PORT win). Needs a restart.",
    )
    workers: int | None = Field(
        default=None, ge=1, le=256, description="Worker processes (routerd; --workers wins). Needs a restart."
    )


class ProviderSettingsSpec(_Model):
    """One entry of ``files_settings`` / ``finetune_settings``: credentials for one provider."""

    model_config = _OPEN | ConfigDict(defer_build=True)

    custom_llm_provider: FileProvider = Field(description="`openai`, `azure` or `vertex_ai`.")
    api_key: str | None = Field(
        default=None, description="API key; defaults to the provider's environment variable."
    )
    api_base: str | None = Field(default=None, description="Base URL.")
    api_version: str | None = Field(default=None, description="API version (Azure).")
    organization: str | None = Field(default=None, description="OpenAI organization id.")
    vertex_project: str | None = Field(default=None, description="Google Cloud project (Vertex AI).")
    vertex_location: str | None = Field(default=None, description="Google Cloud region (Vertex AI).")
    vertex_credentials: Annotated[str | None, BeforeValidator(_json_if_mapping)] = Field(
        default=None, description="Service-account JSON: a file path, the JSON text, or a mapping."
    )

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


EnvValue = Annotated[str, BeforeValidator(_scalar_to_str)]

#: Top-level keys whose empty value (``router_settings:`` with nothing under it) means "not given".
SECTIONS = (
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
    "finetune_settings",
    "files_settings",
    "model_list",
    "guardrails",
    "keys",
    "teams",
)


# Config's validator is built only when something validates a whole file with it (the JSON Schema, the
# SDK, tests): routerd's own pipeline validates each section with that section's model and assembles
# the result with ``model_construct`` (routerd.config.validate), so a file without guardrails, keys or
# teams never builds their models' validators (the docstring is the schema's description).
class Config(_Model):
    """A routing file: deployments and the settings that decide how calls reach them."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        coerce_numbers_to_str=True,
        title="routerd config",
        json_schema_extra={"patternProperties": {"^x-": {}}},
        defer_build=True,
    )

    model_list: tuple[DeploymentSpec, ...] = Field(
        default=(), description="Deployments; entries with the same model_name form a load-balanced group."
    )
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    litellm_settings: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    environment_variables: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="Variables visible to os.environ/ references in this file (the process environment is not changed).",
    )
    include: Annotated[tuple[str, ...], BeforeValidator(_str_to_tuple)] = Field(
        default=(),
        description="Other YAML files merged into this one (paths relative to this file): lists concatenate, "
        "mappings merge, this file wins on conflicting values.",
    )
    finetune_settings: tuple[ProviderSettingsSpec, ...] = Field(
        default=(), description="Provider credentials for /v1/fine_tuning/jobs."
    )
    files_settings: tuple[ProviderSettingsSpec, ...] = Field(
        default=(), description="Provider credentials for /v1/files."
    )
    guardrails: tuple[GuardrailSpec, ...] = Field(
        default=(), description="Guardrails on prompts and answers (LiteLLM's shape)."
    )
    keys: tuple[KeySpec, ...] = Field(
        default=(), description="Client keys with their access, limits and budgets."
    )
    teams: tuple[TeamSpec, ...] = Field(
        default=(), description="Teams: limits and budgets shared by their keys."
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # ``router_settings:`` with nothing under it reads as null; treat it as an empty section
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in SECTIONS and v is None)}
        return data
