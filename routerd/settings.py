"""Daemon settings: command-line flags override ``ROUTERD_*`` environment variables override defaults.

These are the settings of the *process* (where to listen, how many workers, logging). Routing lives in
the YAML file and reloads live; these need a restart, and a reload that would change them says so.

Each field ``name`` is read from the variable ``ROUTERD_NAME`` (upper or lower case, as
pydantic-settings read them before) when the constructor is not given it, and validated by pydantic
like a constructor argument. The reader is the few lines of :class:`EnvironmentSettings`, not
pydantic-settings: that package, with its CLI, dotenv, cloud-secret and TOML sources, cost ~20 ms of
``routerd serve``'s start-up to read a dozen plain variables (docs/performance.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from routerd.config.files import DEFAULT_MAX_ALIAS_NODES, DEFAULT_MAX_BYTES, LoadLimits

#: every setting's environment variable is this prefix and the field's name
ENV_PREFIX = "ROUTERD_"


def environment_values(model: type[BaseModel], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``ROUTERD_*`` values of ``model``'s fields found in ``environ`` (default: ``os.environ``),
    by field name. Names match whatever their case; when two spellings are set, the later one wins."""
    prefix = ENV_PREFIX.lower()
    found = {
        name.lower(): value
        for name, value in (os.environ if environ is None else environ).items()
        if name[: len(prefix)].lower() == prefix
    }
    return {field: found[prefix + field] for field in model.model_fields if prefix + field in found}


class EnvironmentSettings(BaseModel):
    """Frozen settings whose fields not given to the constructor come from ``ROUTERD_<FIELD>``.

    Order of precedence: constructor arguments (the command line's flags), then the environment,
    then the field's default. Values from the environment count as set (``model_fields_set``), as
    arguments do. Variables that name no field are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**environment_values(type(self)), **values})


class HttpSettings(EnvironmentSettings):
    """Settings of the upstream HTTP clients (:func:`routerd.http.default_client` reads them alone).

    The bounds keep a broken or hostile upstream from exhausting the gateway; each is per response.
    """

    http_client: Literal["auto", "fast", "httpx"] = Field(
        default="auto",
        description="upstream client: auto = fast, or httpx when HTTP(S)_PROXY/ALL_PROXY is set",
    )
    upstream_max_body_mb: float = Field(
        default=64.0,
        gt=0,
        description="largest upstream response body read whole (after decoding); larger is a 502",
    )
    upstream_max_line_mb: float = Field(
        default=16.0,
        gt=0,
        description="largest line of a streamed upstream body (one SSE data line); larger is a 502",
    )
    upstream_max_connections: int = Field(
        default=512,
        ge=1,
        description="connections per upstream (scheme, host, port) per worker, busy and idle; at the cap "
        "a call waits for one within its timeout, then fails over as a connection error",
    )
    upstream_pool_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds a call without a timeout of its own waits for a free connection at the "
        "connection cap before it fails as a connection error",
    )


class Settings(HttpSettings):
    """``routerd serve`` settings (``ROUTERD_HOST``, ``ROUTERD_PORT``, ...)."""

    config: Path = Field(default=Path("config.yaml"), description="routing file (YAML)")
    host: str = Field(default="127.0.0.1", description="listen address; 0.0.0.0 in containers")
    port: int = Field(default=4000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    master_key: SecretStr | None = Field(
        default=None, description="overrides general_settings.master_key when set"
    )
    max_body_mb: float | None = Field(
        default=None, gt=0, description="request body limit; overrides general_settings.max_request_size_mb"
    )
    drain_timeout: float = Field(
        default=30.0, ge=0, description="seconds to finish in-flight requests on SIGTERM"
    )
    watch: bool = Field(default=True, description="reload the routing file when it changes")
    reload_debounce_ms: int = Field(default=50, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    log_requests: bool = Field(default=True, description="one structured log line per request")
    metrics_port: int | None = Field(default=None, description="serve /metrics on a separate port")
    metrics_require_auth: bool | None = Field(
        default=None,
        description="/metrics needs the master key; unset: it does on the main port when a key is set",
    )
    access_log: bool = False
    # Bounds on what one request may make the router do (issue 21); see routerd.routing.limits.
    max_prompts: int = Field(
        default=128, ge=1, description="most prompts one /v1/completions request may list (400 beyond)"
    )
    prompt_concurrency: int = Field(
        default=8, ge=1, description="upstream chat calls in flight at once for one request's prompt list"
    )
    max_num_retries: int = Field(default=10, ge=0, description="cap on a request's num_retries")
    max_request_timeout: float = Field(default=600.0, gt=0, description="cap on a request's timeout (s)")
    max_stream_duration: float = Field(
        default=3600.0, gt=0, description="a stream is ended with an in-band error after this many seconds"
    )
    max_wildcard_models: int = Field(
        default=1024, ge=1, description="concrete models of wildcard groups kept, least recently used evicted"
    )
    metrics_max_wildcard_labels: int = Field(
        default=100, ge=1, description="distinct wildcard model/deployment label values before folding"
    )
    spend_db: Path | None = Field(
        default=None,
        description="SQLite file of the spend ledger; default: beside the routing file when it declares "
        "keys, teams or end-user budgets, else memory only",
    )
    spend_flush_seconds: float = Field(default=1.0, gt=0, le=60, description="how often spend is written")
    cache_max_mb: int = Field(default=256, ge=1, description="size of the local response cache (MiB)")
    cache_max_entry_kb: int = Field(default=1024, ge=1, description="largest answer the cache stores (KiB)")
    responses_ttl: float = Field(
        default=30 * 24 * 3600.0,
        gt=0,
        description="seconds a stored /v1/responses answer is kept for previous_response_id and GET",
    )
    batch_max_lines: int = Field(
        default=50_000, ge=1, description="requests in the input file of a gateway /v1/batches batch"
    )
    batch_max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="bytes of a gateway batch's input file, read into memory to check and rewrite it",
    )
    # -- connection bounds (enforced by routerd.server.protocol, per worker) --------------------------
    max_header_bytes: int = Field(
        default=65_536, ge=1024, description="request line + headers; larger heads get 431 (414 for a URL)"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds for a request's head to arrive (from connect or first byte)"
    )
    body_timeout: float = Field(
        default=300.0, gt=0, description="seconds for a request's body to arrive after its head"
    )
    keep_alive_timeout: float = Field(
        default=15.0, gt=0, description="seconds an idle keep-alive connection is kept open"
    )
    max_connections: int | None = Field(
        default=None,
        ge=8,
        description="open client connections per worker; beyond it the longest-idle one is closed "
        "(unset: half the process's open-file limit)",
    )
    config_max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        gt=0,
        description="largest routing file (and each include) the loader reads, in bytes",
    )
    config_max_alias_nodes: int = Field(
        default=DEFAULT_MAX_ALIAS_NODES,
        gt=0,
        description="most YAML nodes a routing file's aliases (*name) may expand to; stops alias bombs",
    )
    # -- model data ----------------------------------------------------------------------------------
    model_prices: Path | None = Field(
        default=None,
        description="a LiteLLM-format model_prices_and_context_window.json whose prices and model data "
        "override the bundled table; read from the environment by routerd.cost (SDK and daemon)",
    )

    # --- shared state (routerd/state/; the README's "Scale-out" section) ---------------------------
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis for state shared by workers and replicas (redis:// or rediss://); "
        "overrides router_settings.redis_*",
    )
    state_namespace: str = Field(
        default="routerd:", min_length=1, description="prefix of every Redis key, so gateways can share one"
    )
    state_timeout_ms: float = Field(
        default=50.0,
        gt=0,
        le=10_000,
        description="longest a Redis call may take; slower or failing Redis switches to local state",
    )
    state_sync_interval: float = Field(
        default=0.5, gt=0, le=60, description="seconds between cooldown/in-flight/latency syncs with Redis"
    )
    state_reconnect_interval: float = Field(
        default=1.0, gt=0, le=60, description="seconds between reconnection attempts while Redis is down"
    )
    state_processes: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="processes sharing the rpm/tpm limits (all workers of all replicas; more seen through "
        "Redis count too); while Redis is unreachable each enforces limit // this. Default: --workers",
    )
    state_probe_lease: float = Field(
        default=30.0, gt=0, le=3600, description="seconds a half-open probe's lock outlives a crashed process"
    )
    state_lease_fraction: float = Field(
        default=0.05,
        ge=0,
        le=0.05,
        description="share of every rpm and tpm limit (deployments, client keys, teams) the processes "
        "may reserve ahead (split between ROUTERD_STATE_PROCESSES) so calls skip the Redis round "
        "trip; 0: every call checks Redis",
    )
    state_queue_max: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="background Redis writes waiting; the oldest are dropped",
    )

    def config_limits(self) -> LoadLimits:
        """The loader's bounds on the routing file, from these settings."""
        return LoadLimits(max_bytes=self.config_max_bytes, max_alias_nodes=self.config_max_alias_nodes)
