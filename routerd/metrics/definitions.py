"""Every metric routerd exports, defined once on an injected registry.

All names start with ``routerd_``. The labels are:

``model_group``   the public model name (``model_name`` in the file) that answered or was tried
``deployment``    the deployment id (``model_info.id``, else a stable hash of its parameters)
``provider``      the adapter name (``openai``, ``azure``, ``anthropic``, ``mock``, ...)
``endpoint``      ``chat`` | ``completions`` | ``embeddings`` | ``moderations`` | ``images``; client requests
                  also ``messages`` / ``responses`` (the front doors; their upstream calls count as ``chat``)
``status``        the HTTP status code (routerd's answer to the client, or the upstream's)

Gauges carry a ``multiprocess_mode`` so that ``routerd serve --workers N`` (prometheus multiprocess
mode, see :mod:`routerd.metrics.multiprocess`) aggregates them meaningfully across worker processes.
"""

from __future__ import annotations

import platform

from routerd import __version__
from routerd.metrics.lean import CounterFamily, GaugeFamily, HistogramFamily, Registry, metric_classes
from routerd.metrics.multiprocess import multiprocess_dir

# Whole requests and upstream calls: LLM answers take from milliseconds (embeddings, cached) to minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# routerd's own time per request: should sit well under a millisecond; buckets resolve 100 us.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)

DEPLOYMENT_STATES = ("healthy", "cooling_down", "half_open")
RELOAD_RESULTS = ("success", "failure")

_DEPLOYMENT = ("model_group", "deployment", "provider")


class RouterdMetrics:
    """The metric families, registered on ``registry`` (a private one per app, so tests are isolated)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        r = registry
        # prometheus_client's classes only when values must be shared with other worker processes
        Counter, Gauge, Histogram = metric_classes(multiprocess_dir() is not None)

        # -- client requests (RequestFinished) --------------------------------------------------
        self.requests: CounterFamily = Counter(
            "routerd_requests",
            "Client requests answered, by model group, the deployment that answered (or was last "
            "tried), provider, endpoint and HTTP status.",
            (*_DEPLOYMENT, "endpoint", "status"),
            registry=r,
        )
        self.request_duration: HistogramFamily = Histogram(
            "routerd_request_duration_seconds",
            "Whole-request latency as the client sees it, retries and fallbacks included (for streams, "
            "until the last chunk).",
            ("model_group", "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead_duration: HistogramFamily = Histogram(
            "routerd_overhead_duration_seconds",
            "routerd's own time per request: request latency minus the time spent in upstream calls "
            "(includes backoff sleeps between retries).",
            ("model_group", "endpoint"),
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.ttft: HistogramFamily = Histogram(
            "routerd_time_to_first_token_seconds",
            "Streams: time from the start of the answering upstream call to its first chunk.",
            (*_DEPLOYMENT, "endpoint"),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens: CounterFamily = Counter(
            "routerd_tokens",
            "Tokens reported by the upstream's usage, by direction (input = prompt, output = completion).",
            (*_DEPLOYMENT, "direction"),
            registry=r,
        )
        self.cost: CounterFamily = Counter(
            "routerd_cost_usd",
            "Spend in US dollars, from per-token prices (the deployment's, else the bundled table).",
            _DEPLOYMENT,
            registry=r,
        )
        self.unpriced: CounterFamily = Counter(
            "routerd_unpriced_requests",
            "Requests with token usage but no known price: their cost is missing from routerd_cost_usd_total.",
            _DEPLOYMENT,
            registry=r,
        )
        self.in_flight: GaugeFamily = Gauge(
            "routerd_requests_in_flight",
            "Client requests being served right now (streams count until their last chunk).",
            ("endpoint",),
            multiprocess_mode="livesum",
            registry=r,
        )

        # -- the gate: keys, guardrails, the cache (RequestFinished) ------------------------------
        # key_alias and team come from the routing file only (declared keys), never from clients.
        self.key_spend: CounterFamily = Counter(
            "routerd_key_spend_usd",
            'Spend in US dollars per client key and team (declared keys; the master key is key_alias="").',
            ("key_alias", "team"),
            registry=r,
        )
        self.key_tokens: CounterFamily = Counter(
            "routerd_key_tokens",
            "Tokens per client key and team, by direction (input, output).",
            ("key_alias", "team", "direction"),
            registry=r,
        )
        self.guardrail_actions: CounterFamily = Counter(
            "routerd_guardrail_actions",
            "Guardrail decisions, by guardrail, action (allow, mask, block, unavailable) and mode.",
            ("guardrail", "action", "mode"),
            registry=r,
        )
        self.guardrail_duration: HistogramFamily = Histogram(
            "routerd_guardrail_duration_seconds",
            "Time a guardrail took on one call (for streams: summed over the chunks).",
            ("guardrail", "mode"),
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.cache_requests: CounterFamily = Counter(
            "routerd_cache_requests",
            "Requests the response cache was consulted for, by endpoint and result (hit, miss).",
            ("endpoint", "result"),
            registry=r,
        )
        self.cache_evictions: CounterFamily = Counter(
            "routerd_cache_evictions",
            "Answers the local response cache evicted (least recently used) to stay within ROUTERD_CACHE_MAX_MB.",
            registry=r,
        )
        self.cache_saved: CounterFamily = Counter(
            "routerd_cache_saved_usd",
            "What the answers served from the cache cost when they were fetched (US dollars).",
            registry=r,
        )

        # -- upstream calls (AttemptFinished) ---------------------------------------------------
        self.upstream_requests: CounterFamily = Counter(
            "routerd_upstream_requests",
            "Calls to upstream deployments (every attempt, retries included), by upstream status.",
            (*_DEPLOYMENT, "endpoint", "status"),
            registry=r,
        )
        self.upstream_duration: HistogramFamily = Histogram(
            "routerd_upstream_duration_seconds",
            "Latency of one upstream call (to the end of the body or stream).",
            (*_DEPLOYMENT, "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # The upstream's own view of its limits is global, so the most recent value any worker saw is
        # the best estimate.
        self.ratelimit_requests: GaugeFamily = Gauge(
            "routerd_upstream_ratelimit_remaining_requests",
            "Requests left in the upstream's current rate-limit window (x-ratelimit-remaining-requests "
            "or anthropic-ratelimit-requests-remaining), as last reported.",
            _DEPLOYMENT,
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.ratelimit_tokens: GaugeFamily = Gauge(
            "routerd_upstream_ratelimit_remaining_tokens",
            "Tokens left in the upstream's current rate-limit window (x-ratelimit-remaining-tokens or "
            "anthropic-ratelimit-tokens-remaining), as last reported.",
            _DEPLOYMENT,
            multiprocess_mode="mostrecent",
            registry=r,
        )

        # -- recovery (RetryScheduled, FallbackTaken, CooldownStarted) ---------------------------
        self.retries: CounterFamily = Counter(
            "routerd_retries",
            "Retries scheduled, by the group and deployment that failed and the error class.",
            ("model_group", "deployment", "error"),
            registry=r,
        )
        self.fallbacks: CounterFamily = Counter(
            "routerd_fallbacks",
            "Fallbacks from one model group to another, by reason and by whether the target answered.",
            ("from_group", "to_group", "reason", "result"),
            registry=r,
        )
        self.cooldowns: CounterFamily = Counter(
            "routerd_cooldowns",
            "Cooldowns started, by deployment and reason (error class, or retry_after).",
            (*_DEPLOYMENT, "reason"),
            registry=r,
        )

        # -- deployment health ------------------------------------------------------------------
        # Health is per worker (unless a shared store is configured): "max" reads "any live worker".
        self.deployment_state: GaugeFamily = Gauge(
            "routerd_deployment_state",
            "1 for the deployment's current breaker state (healthy, cooling_down, half_open), else 0.",
            (*_DEPLOYMENT, "state"),
            multiprocess_mode="livemax",
            registry=r,
        )
        self.cooldown_remaining: GaugeFamily = Gauge(
            "routerd_deployment_cooldown_remaining_seconds",
            "Seconds until a cooling-down deployment may be probed again (0 when not cooling down).",
            _DEPLOYMENT,
            multiprocess_mode="livemax",
            registry=r,
        )
        self.deployment_in_flight: GaugeFamily = Gauge(
            "routerd_deployment_in_flight",
            "Upstream calls in flight per deployment (what least-busy routing balances), as of the last "
            "health refresh.",
            _DEPLOYMENT,
            multiprocess_mode="livesum",
            registry=r,
        )

        # -- configuration and build ------------------------------------------------------------
        self.config_reloads: CounterFamily = Counter(
            "routerd_config_reloads",
            "Reloads of the routing file, by result (success, failure). Unchanged files are not counted.",
            ("result",),
            registry=r,
        )
        # both series exist at 0 from the start, so alert rules on them (rate, absent) work before the
        # first reload
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        # "min" across workers: the oldest configuration any live worker still serves.
        self.config_generation: GaugeFamily = Gauge(
            "routerd_config_generation",
            "Generation of the routing table being served (1 at start, +1 per successful reload).",
            multiprocess_mode="livemin",
            registry=r,
        )
        self.config_last_success: GaugeFamily = Gauge(
            "routerd_config_last_reload_success_timestamp_seconds",
            "Unix time the routing table being served was loaded.",
            multiprocess_mode="livemin",
            registry=r,
        )
        self.config_last_successful: GaugeFamily = Gauge(
            "routerd_config_last_reload_successful",
            "1 if the last attempt to load the routing file succeeded, 0 while the file on disk is broken "
            "(the previous table keeps serving).",
            multiprocess_mode="livemin",
            registry=r,
        )
        # -- shared state (routerd/state/) ---------------------------------------------------------
        self.state_backend_up: GaugeFamily = Gauge(
            "routerd_state_backend_up",
            "1 while the state backend answers (always for memory); 0 while Redis is unreachable and "
            "each process routes on local state with its limits divided.",
            ("backend",),
            multiprocess_mode="livemin",
            registry=r,
        )
        self.state_mode: GaugeFamily = Gauge(
            "routerd_state_mode",
            "1 for the active state mode: shared (Redis), local (one process, or Redis unreachable), "
            "per_worker (--workers N without Redis: limits divided by N).",
            ("mode",),
            multiprocess_mode="livemax",
            registry=r,
        )
        self.build_info: GaugeFamily = Gauge(
            "routerd_build_info",
            "Always 1; the labels say which routerd and Python are running.",
            ("version", "python"),
            multiprocess_mode="livemax",
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
