"""Every documented setting, and the tests that fail when it has no effect.

The documentation (docs/configuration.md for the routing file, docs/api/openai.md for ``ROUTERD_*``)
promises what each setting does. ``tests/test_settings_docs.py`` checks that every setting routerd
accepts is listed in exactly one of the tables below:

* :data:`BEHAVIOUR` -- the tests that exercise the setting's effect (a test that would fail if the
  setting were ignored). Each named test must exist and mention the setting (or the name it goes by in
  the compiled table, given in :data:`EVIDENCE`) in its own source or its module's.
* :data:`NO_EFFECT` -- settings documented as having no effect of their own (accepted for LiteLLM
  compatibility, or informational). The documentation says so; the reason is given here.
* :data:`UNTESTED` -- settings that act, but no test yet fails when they do not (to be written).
* :data:`KNOWN_GAPS` -- settings the documentation says act, that do not act today. Listed so the
  check is honest rather than silently passing; each names where it will get its meaning.

Keys are written as in the file: ``router_settings.num_retries``, ``litellm_params.rpm``, and
``provider_settings.X`` for a key of an entry of ``files_settings`` / ``finetune_settings``. Settings
of the process are written as their environment variables (``ROUTERD_PORT``).
"""

from __future__ import annotations

_EXEC = "tests/routing/test_routing_executor.py"
_HEALTH = "tests/routing/test_routing_health.py"
_RECOVERY = "tests/routing/test_routing_recovery.py"
_STRATEGIES = "tests/routing/test_routing_strategies.py"
_COMPILE = "tests/config/test_config_compile.py"
_LOADER = "tests/config/test_config_loader.py"
_COST = "tests/metrics/test_cost.py"
_METRICS_SERVER = "tests/metrics/test_server.py"
_PROCESS = "tests/e2e/test_process.py"
_EFFECTS = "tests/test_settings_effects.py"
_GATE = "tests/e2e/test_gate_e2e.py"
# a guardrails: entry's keys (guardrails[].litellm_params.KEY)
_GP = "guardrails[].litellm_params."
_GUARD_KEYS = "tests/config/test_config_guardrails_keys.py"
_ENGINE = "tests/guardrails/test_engine.py"
_FILTER = "tests/guardrails/test_content_filter.py"
_SERVICES = "tests/e2e/test_guardrail_services_e2e.py"
_STREAMS = "tests/e2e/test_guardrail_streams_e2e.py"
_SETTINGS = "tests/routing/test_routing_settings.py"
# litellm_settings keys that mean the same as router_settings keys reach the same policy: this test
# shows that, the router_settings entry's tests show the policy acting.
_VERTEX_FILES = "tests/finetune/test_gateway_vertex.py::test_file_list_retrieve_delete"
_BOTH = f"{_EFFECTS}::test_litellm_settings_reach_the_policy_the_router_uses"
_BOUNDS = "tests/hostile/test_routing_bounds.py"
_LIMITS = f"{_BOUNDS}::test_the_daemons_settings_set_the_routers_limits"
_SERVER_BOUNDS = "tests/hostile/test_server_bounds.py"
_STATE = "tests/state/test_redis_store.py"
_STATE_PROCESSES = "tests/state/test_processes.py"
_STATE_ACCESS = "tests/state/test_shared_access.py"
_STATE_TOKENS = "tests/state/test_token_leases.py"
_REDIS_KEYS = "test_router_settings_redis_keys_connect_and_redis_url_variable_wins"

_DAEMON_CALLBACKS_TESTS = "tests/sdk/test_porting_daemon_callbacks.py"
_DAEMON_CALLBACKS = f"{_DAEMON_CALLBACKS_TESTS}::test_module_instance_callbacks_see_requests"
BEHAVIOUR: dict[str, tuple[str, ...]] = {
    # -- callbacks (module.instance paths loaded with the table, reloaded with it; LiteLLM's three lists)
    "litellm_settings.callbacks": (
        _DAEMON_CALLBACKS,
        f"{_DAEMON_CALLBACKS_TESTS}::test_a_reload_adds_and_removes_callbacks_and_a_bad_path_keeps_the_old_table",
    ),
    "litellm_settings.success_callback": (
        f"{_DAEMON_CALLBACKS_TESTS}::test_success_callback_hears_only_of_successes",
    ),
    "litellm_settings.failure_callback": (
        f"{_DAEMON_CALLBACKS_TESTS}::test_failure_callback_hears_only_of_failures",
    ),
    "litellm_settings.turn_off_message_logging": (
        "tests/sdk/test_message_logging_daemon.py::test_the_daemon_setting_redacts_logging_hooks_and_reloads",
    ),
    # -- top level
    "model_list": ("tests/sdk/test_sdk_calls.py::test_model_list_routes_over_the_given_deployments",),
    "include": (f"{_LOADER}::test_include_concatenates_lists_and_merges_mappings",),
    "environment_variables": (
        f"{_LOADER}::test_environment_variables_section_feeds_references_without_touching_os_environ",
    ),
    "guardrails": (
        f"{_GATE}::test_secret_in_prompt_is_blocked_before_the_upstream",
        "tests/config/test_config_guardrails_keys.py::test_guardrails_compile_into_the_table",
    ),
    "keys": (
        f"{_GATE}::test_a_key_sees_and_calls_only_its_groups",
        f"{_GATE}::test_rpm_limit_answers_429_with_retry_after",
    ),
    "teams": ("tests/server/test_gate.py::test_team_and_end_user_budgets",),
    "model_info.access_groups": (
        "tests/access/test_access_core.py::test_model_access_by_name_wildcard_access_group_and_team",
    ),
    "litellm_settings.cache": (f"{_GATE}::test_repeated_chat_is_answered_once_upstream",),
    "litellm_settings.cache_params": (
        "tests/server/test_gate.py::test_cache_hit_scoped_by_key_and_controls",  # ttl: 60 expires
    ),
    "litellm_settings.max_end_user_budget": ("tests/server/test_gate.py::test_team_and_end_user_budgets",),
    "litellm_settings.end_user_budget_duration": (
        "tests/server/test_gate.py::test_team_and_end_user_budgets",
    ),
    "files_settings": (
        "tests/finetune/test_gateway_errors.py::test_a_provider_without_a_settings_entry_names_the_missing_entry",
    ),
    "finetune_settings": (
        "tests/finetune/test_finetune_requests.py::test_a_provider_without_an_entry_names_the_config_key",
    ),
    # -- a deployment
    "model_list[].model_name": ("tests/e2e/test_readme.py::test_readme_curl_example_gets_an_answer_offline",),
    "litellm_params.model": (f"{_COMPILE}::test_provider_resolution",),
    "litellm_params.custom_llm_provider": (f"{_COMPILE}::test_provider_resolution",),
    "litellm_params.api_key": (
        "tests/providers/test_openai_adapter.py::test_wrong_key_is_authentication_error_without_the_key",
    ),
    "litellm_params.api_base": (
        "tests/providers/test_openai_translation.py::test_api_base_override_for_compatible_servers",
    ),
    "litellm_params.api_version": ("tests/providers/test_azure_adapter.py::test_deployment_urls",),
    "litellm_params.organization": (
        "tests/providers/test_openai_translation.py::test_prepare_precomputes_urls_and_headers",
    ),
    "litellm_params.timeout": (f"{_SETTINGS}::test_deployment_timeout_bounds_each_attempt",),
    "litellm_params.stream_timeout": (
        "tests/routing/test_routing_streams.py::test_stream_timeout_before_first_chunk_uses_stream_timeout",
    ),
    "litellm_params.max_retries": (
        f"{_EXEC}::test_max_retries_repeats_the_http_call_on_the_same_deployment",
        f"{_EXEC}::test_max_retries_does_not_repeat_errors_that_are_not_retryable",
    ),
    "litellm_params.num_retries": (
        "tests/routing/test_routing_plan.py::test_group_plan_precomputes_weights_costs_and_retries",
    ),
    "litellm_params.rpm": (f"{_EXEC}::test_no_deployment_ever_exceeds_its_rpm",),
    "litellm_params.tpm": (
        "tests/routing/test_routing_usage.py::test_no_sixty_second_span_ever_exceeds_the_limits",
    ),
    "litellm_params.weight": (f"{_STRATEGIES}::test_weighted_choice_matches_weights",),
    "litellm_params.order": (
        "tests/routing/test_routing_plan.py::test_lower_order_tier_first_higher_tier_only_when_it_is_unavailable",
    ),
    "litellm_params.cooldown_time": (
        "tests/sdk/test_sdk_router.py::test_router_retries_on_another_deployment_and_cools_the_failing_one_down",
    ),
    "litellm_params.input_cost_per_token": (f"{_COST}::test_deployment_prices_win_over_the_table",),
    "litellm_params.output_cost_per_token": (f"{_COST}::test_deployment_prices_win_over_the_table",),
    "litellm_params.mock_response": (
        "tests/providers/test_mock_provider.py::test_request_mock_response_beats_the_deployment_one",
    ),
    "litellm_params.drop_params": (
        "tests/providers/test_anthropic_adapter.py::test_unsupported_parameter_is_a_400_without_drop_params",
        "tests/providers/test_anthropic_adapter.py::test_drop_params_drops_them",
    ),
    "model_info.id": (f"{_EXEC}::test_publish_keeps_health_of_remaining_ids_and_drops_removed",),
    "model_info.max_input_tokens": (
        f"{_EXEC}::test_context_window_precheck_falls_back_without_calling_the_small_model",
    ),
    "model_info.max_output_tokens": (
        "tests/providers/test_anthropic_adapter.py::test_default_max_tokens_respects_the_model_output_limit",
    ),
    "model_info.input_cost_per_token": (f"{_COST}::test_deployment_prices_win_over_the_table",),
    "model_info.output_cost_per_token": (f"{_COST}::test_deployment_prices_win_over_the_table",),
    "model_info.base_model": (f"{_COST}::test_base_model_prices_a_freely_named_azure_deployment",),
    "model_info.mode": ("tests/providers/test_openai_translation.py::test_which_models_are_text_only",),
    # -- router_settings
    "router_settings.num_retries": (
        f"{_EXEC}::test_retries_exhausted_raise_the_last_error_with_routing_info",
    ),
    "router_settings.allowed_fails": (
        f"{_HEALTH}::test_cools_down_after_more_than_allowed_fails_in_a_window",
    ),
    "router_settings.cooldown_time": (f"{_EFFECTS}::test_cooldown_rules_come_from_the_file",),
    "router_settings.fallbacks": (
        f"{_EXEC}::test_group_all_down_falls_back_to_the_next_group_across_providers",
        "tests/e2e/test_failover.py::test_openai_503_falls_back_to_anthropic",
    ),
    "router_settings.context_window_fallbacks": (
        f"{_EXEC}::test_context_window_error_from_upstream_uses_context_window_fallbacks",
    ),
    "router_settings.content_policy_fallbacks": (
        "tests/e2e/test_failover.py::test_gemini_safety_block_goes_to_the_content_policy_fallback",
    ),
    "router_settings.default_fallbacks": (
        f"{_RECOVERY}::test_fallback_chains_never_loop_and_stop_at_max_fallbacks",
    ),
    "router_settings.max_fallbacks": (
        f"{_EXEC}::test_fallback_chain_stops_at_max_fallbacks_and_skips_unknown_and_tried_groups",
    ),
    "router_settings.enable_pre_call_checks": (
        f"{_EXEC}::test_context_window_precheck_falls_back_without_calling_the_small_model",
        f"{_EXEC}::test_without_enable_pre_call_checks_the_small_model_is_called_as_in_litellm",
    ),
    "router_settings.routing_strategy": (
        f"{_EXEC}::test_latency_routing_moves_traffic_away_from_a_slow_deployment",
        f"{_EXEC}::test_least_busy_counts_calls_in_flight",
        f"{_EXEC}::test_cost_based_routing_prefers_the_cheapest_healthy",
    ),
    "router_settings.routing_strategy_args": (
        f"{_STRATEGIES}::test_latency_buffer_spreads_over_near_equals",
    ),
    "router_settings.retry_policy": (
        f"{_RECOVERY}::test_retryable_errors_use_the_budget_with_policy_and_request_overrides",
    ),
    "router_settings.allowed_fails_policy": (f"{_HEALTH}::test_allowed_fails_policy_is_per_error_class",),
    "router_settings.max_cooldown_time": (f"{_EFFECTS}::test_cooldown_rules_come_from_the_file",),
    "router_settings.disable_cooldowns": (f"{_EFFECTS}::test_disable_cooldowns_from_the_file",),
    "router_settings.timeout": (f"{_SETTINGS}::test_router_timeout_bounds_the_whole_call",),
    "router_settings.stream_timeout": (
        "tests/routing/test_routing_streams.py::test_stream_timeout_before_first_chunk_uses_stream_timeout",
    ),
    "router_settings.retry_after": (f"{_SETTINGS}::test_retry_after_is_the_minimum_sleep_before_a_retry",),
    "router_settings.backoff_base": (
        f"{_EXEC}::test_retry_on_the_only_deployment_sleeps_a_jittered_backoff",
    ),
    "router_settings.backoff_cap": (
        f"{_EXEC}::test_retry_after_is_honoured_before_retrying_the_same_deployment",
    ),
    "router_settings.model_group_alias": (f"{_EXEC}::test_aliases_resolve_to_their_group",),
    "router_settings.azure_deployment_aliases": (
        "tests/e2e/test_gateway_surface_e2e.py::test_azure_deployment_aliases_route_and_reload",
    ),
    # -- the entries of retry_policy / allowed_fails_policy that act (see NO_EFFECT for the others)
    "retry_policy.AuthenticationErrorRetries": (
        f"{_EFFECTS}::test_retry_policy_per_error_class_from_the_file",
    ),
    "retry_policy.TimeoutErrorRetries": (f"{_EFFECTS}::test_retry_policy_per_error_class_from_the_file",),
    "retry_policy.RateLimitErrorRetries": (f"{_EFFECTS}::test_retry_policy_per_error_class_from_the_file",),
    "retry_policy.InternalServerErrorRetries": (
        f"{_EFFECTS}::test_retry_policy_per_error_class_from_the_file",
    ),
    "allowed_fails_policy.AuthenticationErrorAllowedFails": (
        f"{_EFFECTS}::test_allowed_fails_policy_per_error_class_from_the_file",
    ),
    "allowed_fails_policy.TimeoutErrorAllowedFails": (
        f"{_EFFECTS}::test_allowed_fails_policy_per_error_class_from_the_file",
    ),
    "allowed_fails_policy.RateLimitErrorAllowedFails": (
        f"{_EFFECTS}::test_allowed_fails_policy_per_error_class_from_the_file",
    ),
    "allowed_fails_policy.InternalServerErrorAllowedFails": (
        f"{_EFFECTS}::test_allowed_fails_policy_per_error_class_from_the_file",
    ),
    "model_group_alias.model": (f"{_EXEC}::test_aliases_resolve_to_their_group",),
    "model_group_alias.hidden": (f"{_EFFECTS}::test_a_hidden_alias_routes_but_is_not_listed",),
    # -- litellm_settings
    "litellm_settings.num_retries": (
        _BOTH,
        f"{_EXEC}::test_retries_exhausted_raise_the_last_error_with_routing_info",
    ),
    "litellm_settings.allowed_fails": (
        _BOTH,
        f"{_HEALTH}::test_cools_down_after_more_than_allowed_fails_in_a_window",
    ),
    "litellm_settings.cooldown_time": (_BOTH, f"{_EFFECTS}::test_cooldown_rules_come_from_the_file"),
    "litellm_settings.fallbacks": (
        _BOTH,
        f"{_EXEC}::test_group_all_down_falls_back_to_the_next_group_across_providers",
    ),
    "litellm_settings.context_window_fallbacks": (
        _BOTH,
        f"{_EXEC}::test_context_window_error_from_upstream_uses_context_window_fallbacks",
    ),
    "litellm_settings.content_policy_fallbacks": (
        _BOTH,
        "tests/e2e/test_failover.py::test_gemini_safety_block_goes_to_the_content_policy_fallback",
    ),
    "litellm_settings.default_fallbacks": (
        _BOTH,
        f"{_RECOVERY}::test_fallback_chains_never_loop_and_stop_at_max_fallbacks",
    ),
    "litellm_settings.max_fallbacks": (
        _BOTH,
        f"{_EXEC}::test_fallback_chain_stops_at_max_fallbacks_and_skips_unknown_and_tried_groups",
    ),
    "litellm_settings.request_timeout": (_BOTH, f"{_SETTINGS}::test_router_timeout_bounds_the_whole_call"),
    "litellm_settings.modify_params": (
        "tests/sdk/test_porting_modify_params.py::test_the_daemons_litellm_settings_modify_params_reaches_every_deployment",
    ),
    "litellm_settings.drop_params": (
        _BOTH,
        "tests/providers/test_anthropic_adapter.py::test_drop_params_drops_them",
    ),
    # -- general_settings
    "general_settings.master_key": ("tests/e2e/test_errors.py::test_bad_key_is_a_401",),
    "general_settings.max_request_size_mb": ("tests/e2e/test_errors.py::test_body_over_the_limit_is_a_413",),
    "general_settings.metrics_require_auth": (
        f"{_METRICS_SERVER}::test_metrics_need_the_master_key_when_one_is_set_unless_opened",
    ),
    "general_settings.host": (f"{_EFFECTS}::test_general_settings_give_the_listen_address_and_workers",),
    "general_settings.port": (f"{_EFFECTS}::test_general_settings_give_the_listen_address_and_workers",),
    "general_settings.workers": (f"{_EFFECTS}::test_general_settings_give_the_listen_address_and_workers",),
    # -- files_settings / finetune_settings entries
    "provider_settings.custom_llm_provider": (
        "tests/finetune/test_gateway_errors.py::test_a_provider_without_a_settings_entry_names_the_missing_entry",
    ),
    "provider_settings.api_key": (
        "tests/finetune/test_finetune_requests.py::test_environment_defaults_fill_only_empty_fields",
    ),
    "provider_settings.api_base": (
        "tests/finetune/test_finetune_requests.py::test_the_azure_client_builds_azure_urls",
    ),
    "provider_settings.api_version": (
        "tests/finetune/test_finetune_requests.py::test_the_azure_client_builds_azure_urls",
    ),
    "provider_settings.vertex_project": (_VERTEX_FILES,),
    "provider_settings.vertex_credentials": (_VERTEX_FILES,),
    "provider_settings.vertex_location": (_VERTEX_FILES,),
    # -- the process (ROUTERD_*)
    "ROUTERD_CONFIG": (f"{_PROCESS}::test_two_workers_serve_requests",),
    "ROUTERD_HOST": (f"{_EFFECTS}::test_general_settings_give_the_listen_address_and_workers",),
    "ROUTERD_PORT": (f"{_EFFECTS}::test_general_settings_give_the_listen_address_and_workers",),
    "ROUTERD_WORKERS": (
        f"{_PROCESS}::test_two_workers_serve_requests",
        f"{_STATE_PROCESSES}::test_two_workers_without_redis_divide_a_limit",
    ),
    "ROUTERD_MASTER_KEY": (f"{_EFFECTS}::test_the_master_key_variable_wins_over_the_file",),
    "ROUTERD_MAX_BODY_MB": (
        "tests/finetune/test_gateway_errors.py::test_an_upload_over_the_body_limit_is_a_413",
    ),
    "ROUTERD_DRAIN_TIMEOUT": (f"{_PROCESS}::test_sigterm_drains_in_flight_requests_then_exits_0",),
    "ROUTERD_WATCH": (
        "tests/reload/test_reload_live.py::test_fifty_rewrites_under_load_drop_nothing_and_only_valid_versions_go_live",
        f"{_PROCESS}::test_sighup_reloads_every_worker_in_place",  # --no-watch: an edit alone changes nothing
    ),
    "ROUTERD_LOG_LEVEL": (f"{_EFFECTS}::test_log_level_and_format",),
    "ROUTERD_LOG_FORMAT": (f"{_EFFECTS}::test_log_level_and_format",),
    "ROUTERD_LOG_REQUESTS": (f"{_EFFECTS}::test_log_requests_switches_the_request_log_line",),
    "ROUTERD_METRICS_PORT": (
        f"{_METRICS_SERVER}::test_a_separate_metrics_port_serves_metrics_and_the_api_port_does_not",
    ),
    "ROUTERD_METRICS_REQUIRE_AUTH": (
        f"{_METRICS_SERVER}::test_metrics_need_the_master_key_when_one_is_set_unless_opened",
        f"{_METRICS_SERVER}::test_the_separate_metrics_port_is_open_by_default",
    ),
    # connection bounds (issue 21, M2): a raw-socket client against a daemon with small bounds
    "ROUTERD_MAX_HEADER_BYTES": (
        f"{_SERVER_BOUNDS}::test_an_oversized_head_is_refused_with_431_in_openai_shape",
        f"{_SERVER_BOUNDS}::test_an_oversized_head_dripped_in_pieces_is_refused_before_it_ends",
        f"{_SERVER_BOUNDS}::test_an_overlong_url_is_refused_with_414",
    ),
    "ROUTERD_HEADER_TIMEOUT": (
        f"{_SERVER_BOUNDS}::test_a_slow_head_is_closed_after_the_header_timeout",
        f"{_SERVER_BOUNDS}::test_a_connection_that_sends_nothing_is_closed",
    ),
    "ROUTERD_BODY_TIMEOUT": (f"{_SERVER_BOUNDS}::test_a_slow_body_is_closed_after_the_body_timeout",),
    "ROUTERD_KEEP_ALIVE_TIMEOUT": (f"{_SERVER_BOUNDS}::test_an_idle_keep_alive_connection_is_closed",),
    "ROUTERD_MAX_CONNECTIONS": (
        f"{_SERVER_BOUNDS}::test_a_flood_of_idle_connections_does_not_shut_out_probes_or_clients",
        f"{_SERVER_BOUNDS}::test_the_default_connection_limit_follows_the_open_file_limit",
        f"{_SERVER_BOUNDS}::test_the_connection_bounds_are_serve_flags",
    ),
    "ROUTERD_ACCESS_LOG": (f"{_EFFECTS}::test_access_log_switches_uvicorns_access_log",),
    # -- keys, budgets, guardrails and the cache (issues 14, 15, 22)
    "ROUTERD_MODEL_PRICES": ("tests/sdk/test_porting_helpers.py::test_routerd_model_prices_file_is_read",),
    "ROUTERD_SPEND_DB": (f"{_GATE}::test_spend_is_written_every_flush_interval",),
    "ROUTERD_SPEND_FLUSH_SECONDS": (f"{_GATE}::test_spend_is_written_every_flush_interval",),
    "ROUTERD_CACHE_MAX_MB": (f"{_GATE}::test_cache_size_settings_bound_what_is_kept",),
    "ROUTERD_CACHE_MAX_ENTRY_KB": (f"{_GATE}::test_cache_size_settings_bound_what_is_kept",),
    # -- front doors (issue 17)
    "ROUTERD_RESPONSES_TTL": (
        "tests/server/test_frontdoor_routes.py::test_responses_ttl_sets_how_long_a_stored_response_lives",
        "tests/server/test_frontdoor_routes.py::test_the_daemons_store_uses_responses_ttl",
    ),
    "ROUTERD_BATCH_MAX_LINES": (
        "tests/e2e/test_gateway_batches_e2e.py::test_the_input_file_is_checked_and_bounded",
    ),
    "ROUTERD_BATCH_MAX_FILE_BYTES": (
        "tests/e2e/test_gateway_batches_e2e.py::test_the_input_file_is_checked_and_bounded",
    ),
    # -- bounds on one request (issue 21): each reaches the router (_LIMITS) and acts (the other test)
    "ROUTERD_MAX_PROMPTS": (
        f"{_BOUNDS}::test_h1_the_daemon_answers_400_in_openai_shape_and_reports_the_attempts",
        _LIMITS,
    ),
    "ROUTERD_PROMPT_CONCURRENCY": (
        f"{_BOUNDS}::test_h1_fan_out_is_bounded_in_concurrency_and_counted_as_attempts",
        _LIMITS,
    ),
    "ROUTERD_MAX_NUM_RETRIES": (f"{_BOUNDS}::test_m6_a_clients_num_retries_is_capped", _LIMITS),
    "ROUTERD_MAX_REQUEST_TIMEOUT": (f"{_BOUNDS}::test_m6_a_clients_timeout_is_capped", _LIMITS),
    "ROUTERD_MAX_STREAM_DURATION": (
        f"{_BOUNDS}::test_l6_the_daemon_ends_an_endless_stream_with_an_in_band_error",
    ),
    "ROUTERD_MAX_WILDCARD_MODELS": (
        f"{_BOUNDS}::test_m3_wildcard_models_are_kept_lru_and_evicted_with_their_health",
        f"{_BOUNDS}::test_m3_a_model_evicted_with_calls_in_flight_drops_its_health_when_the_last_ends",
        _LIMITS,
    ),
    "ROUTERD_METRICS_MAX_WILDCARD_LABELS": (
        f"{_BOUNDS}::test_m3_metric_labels_of_wildcard_models_fold_past_their_budget",
        _LIMITS,
    ),
    "ROUTERD_CONFIG_MAX_BYTES": (
        "tests/hostile/test_config_bounds.py::test_a_file_over_the_size_bound_is_refused_before_parsing",
    ),
    "ROUTERD_CONFIG_MAX_ALIAS_NODES": (
        "tests/hostile/test_config_bounds.py::test_the_alias_budget_is_a_setting_that_acts",
    ),
    "ROUTERD_HTTP_CLIENT": (
        "tests/transport/test_fasthttp.py::test_default_client",
        "tests/transport/test_proxy.py::test_calls_go_through_the_configured_proxy",
    ),
    "ROUTERD_UPSTREAM_MAX_BODY_MB": (
        "tests/hostile/test_upstream_http.py::test_environment_variables_reach_the_default_client",
        "tests/hostile/test_upstream_http.py::test_the_daemon_settings_bound_its_upstream_client",
    ),
    "ROUTERD_UPSTREAM_MAX_CONNECTIONS": (
        "tests/transport/test_connection_cap.py::test_calls_over_the_cap_wait_for_a_connection",
        "tests/transport/test_connection_cap.py::test_the_setting_reaches_the_default_client",
        "tests/transport/test_pool_bounds.py::test_the_httpx_client_holds_the_connection_cap",
        "tests/transport/test_pool_bounds.py::test_past_httpx_own_default_of_100",
    ),
    "ROUTERD_UPSTREAM_POOL_TIMEOUT": (
        "tests/transport/test_pool_bounds.py::test_a_call_without_timeout_waits_for_a_connection_within_the_pool_timeout",
        "tests/transport/test_pool_bounds.py::test_the_pool_timeout_setting_reaches_both_clients",
    ),
    "ROUTERD_UPSTREAM_MAX_LINE_MB": (
        "tests/hostile/test_upstream_http.py::test_environment_variables_reach_the_default_client",
        "tests/hostile/test_upstream_http.py::test_settings_bound_the_default_client",
        "tests/providers/test_sse_stream.py::test_the_line_bound_of_the_client_applies_to_the_byte_path",
    ),
    # -- shared state (docs/operations/scale-out.md)
    "router_settings.redis_url": (f"{_STATE_PROCESSES}::test_three_replicas_hold_one_rpm_limit",),
    "router_settings.redis_host": (f"{_STATE}::{_REDIS_KEYS}",),
    "router_settings.redis_port": (f"{_STATE}::{_REDIS_KEYS}",),
    "router_settings.redis_password": (f"{_STATE}::{_REDIS_KEYS}",),
    "router_settings.redis_db": (f"{_STATE}::{_REDIS_KEYS}",),
    "router_settings.redis_startup_nodes": (
        f"{_STATE_PROCESSES}::test_three_replicas_on_a_redis_cluster_hold_one_rpm_limit",
        f"{_STATE}::test_cooldowns_and_limits_on_a_redis_cluster",
    ),
    "ROUTERD_REDIS_URL": (
        f"{_STATE}::{_REDIS_KEYS}",
        f"{_STATE}::test_two_processes_share_one_rpm_window",
        f"{_STATE}::test_a_tls_redis_through_a_rediss_url",
    ),
    "ROUTERD_STATE_NAMESPACE": (f"{_STATE}::test_namespaces_keep_gateways_apart",),
    "ROUTERD_STATE_TIMEOUT_MS": (f"{_STATE}::test_a_slow_redis_is_abandoned_after_the_timeout",),
    "ROUTERD_STATE_SYNC_INTERVAL": (
        f"{_STATE}::test_in_flight_and_latency_are_shared",
        f"{_STATE_ACCESS}::test_a_dead_process_slots_are_freed_after_the_expiry",
    ),
    "ROUTERD_STATE_RECONNECT_INTERVAL": (f"{_STATE}::test_redis_lost_then_back",),
    "ROUTERD_STATE_PROCESSES": (
        f"{_STATE}::test_redis_unreachable_at_start_serves_locally_with_limits_divided",
        f"{_STATE_PROCESSES}::test_redis_killed_under_load_then_restarted",
        f"{_STATE}::test_processes_seen_through_redis_raise_the_divisor",
        f"{_STATE_ACCESS}::test_redis_down_falls_back_to_per_process_shares",
    ),
    "ROUTERD_STATE_PROBE_LEASE": (f"{_STATE}::test_the_probe_lock_lives_for_the_probe_lease",),
    "ROUTERD_STATE_LEASE_FRACTION": (
        f"{_STATE_TOKENS}::test_token_leases_never_exceed_the_tpm_limit",
        f"{_STATE_TOKENS}::test_tpm_calls_are_served_from_a_token_lease",
        f"{_STATE_ACCESS}::test_key_and_team_are_checked_in_one_step",
        f"{_STATE_ACCESS}::test_leases_serve_most_key_calls_without_a_round_trip",
        f"{_STATE}::test_rpm_leases_never_exceed_the_limit",
        f"{_STATE}::test_without_leases_every_call_is_checked",
    ),
    "ROUTERD_STATE_QUEUE_MAX": (f"{_STATE}::test_background_writes_are_bounded_by_the_queue",),
    # -- a guardrails: entry (issue 15; docs/guardrails.md)
    "guardrails[].guardrail_name": (f"{_GUARD_KEYS}::test_guardrails_compile_into_the_table",),
    f"{_GP}guardrail": (f"{_GUARD_KEYS}::test_guardrails_compile_into_the_table",),
    f"{_GP}mode": (
        f"{_GUARD_KEYS}::test_guardrails_compile_into_the_table",
        f"{_ENGINE}::test_answer_runs_name_each_guardrails_mode",
    ),
    f"{_GP}default_on": (f"{_ENGINE}::test_select_default_on_requested_and_scoped",),
    f"{_GP}skip_if_unsupported": (f"{_GUARD_KEYS}::test_skipped_unknown_guardrail_is_a_loud_warning",),
    f"{_GP}patterns": (f"{_FILTER}::test_block_wins_over_mask_and_names_the_rule_not_the_value",),
    f"{_GP}blocked_words": (f"{_FILTER}::test_keywords_match_whole_words_case_insensitively",),
    f"{_GP}blocked_words_file": (f"{_FILTER}::test_blocked_words_file",),
    f"{_GP}categories": (
        f"{_FILTER}::test_categories_from_a_file_with_severity_threshold_and_exceptions",
        f"{_FILTER}::test_builtin_categories_need_no_file",
        f"{_ENGINE}::test_moderation_blocks_flagged_categories",
    ),
    f"{_GP}pattern_redaction_format": (f"{_FILTER}::test_custom_regex_and_redaction_formats",),
    f"{_GP}keyword_redaction_tag": (f"{_FILTER}::test_custom_regex_and_redaction_formats",),
    f"{_GP}stream_window": (f"{_ENGINE}::test_stream_guard_drops_chunks_that_only_carried_held_back_text",),
    f"{_GP}api_base": (f"{_SERVICES}::test_the_webhook_receives_the_texts_and_request_data_without_keys",),
    f"{_GP}api_key": (f"{_SERVICES}::test_the_webhook_receives_the_texts_and_request_data_without_keys",),
    f"{_GP}headers": (f"{_STREAMS}::test_replacement_texts_reach_the_client",),
    f"{_GP}timeout": (
        f"{_SERVICES}::test_a_slow_webhook_fails_open_or_closed_as_declared",
        f"{_ENGINE}::test_webhook_timeout_is_bounded",
    ),
    f"{_GP}fail_open": (
        f"{_SERVICES}::test_a_slow_webhook_fails_open_or_closed_as_declared",
        f"{_STREAMS}::test_a_slow_service_fails_open_or_closed_per_check",
    ),
    f"{_GP}additional_provider_specific_params": (f"{_ENGINE}::test_webhook_allow_block_and_replace",),
    f"{_GP}model": (f"{_SERVICES}::test_moderation_blocks_a_flagged_prompt_and_passes_a_clean_one",),
    f"{_GP}stream_check_chars": (
        f"{_STREAMS}::test_the_check_window_sets_how_often_the_service_is_asked",
        f"{_GUARD_KEYS}::test_stream_check_chars_of_service_guardrails_is_bounded_and_located",
    ),
}

# What a test calls a setting when it is not the key's own name (the compiled table's or the health
# rules' name); a regular expression searched in the test's and its module's source.
EVIDENCE: dict[str, str] = {
    "model_list[].model_name": r"serve_config|model_name",
    "litellm_params.model": r"\bmodel\b",
    "litellm_params.api_key": r"api_key|\bkey\b",
    "litellm_params.num_retries": r"num_retries",
    "litellm_params.cooldown_time": r"cooldown_time",
    "litellm_params.input_cost_per_token": r"input_cost_per_token",
    "litellm_params.output_cost_per_token": r"output_cost_per_token",
    "model_info.id": r"\bids?\b",
    "router_settings.allowed_fails": r"allowed_fails",
    "router_settings.routing_strategy_args": r"lowest_latency_buffer",
    "router_settings.retry_policy": r"RetryPolicy\(",
    "router_settings.allowed_fails_policy": r"AllowedFailsPolicy\(",
    "router_settings.model_group_alias": r"alias",
    "model_group_alias.model": r"alias",
    "router_settings.fallbacks": r"fallbacks",
    "litellm_settings.fallbacks": r"fallbacks",
    "general_settings.master_key": r"master_key",
    "general_settings.max_request_size_mb": r"max_request_size_mb",
    "provider_settings.custom_llm_provider": r"custom_llm_provider",
    "ROUTERD_CONFIG": r"--config|ROUTERD_CONFIG",
    "ROUTERD_WORKERS": r"--workers|ROUTERD_WORKERS",
    "ROUTERD_MAX_BODY_MB": r"max_body_mb|ROUTERD_MAX_BODY_MB",
    "ROUTERD_DRAIN_TIMEOUT": r"drain_timeout|ROUTERD_DRAIN_TIMEOUT",
    "ROUTERD_WATCH": r"watch",
    "ROUTERD_METRICS_PORT": r"metrics_port|ROUTERD_METRICS_PORT",
    "ROUTERD_METRICS_REQUIRE_AUTH": r"metrics_require_auth|ROUTERD_METRICS_REQUIRE_AUTH",
    "ROUTERD_MAX_REQUEST_TIMEOUT": r"max_request_timeout|max_timeout",
    "ROUTERD_METRICS_MAX_WILDCARD_LABELS": r"metrics_max_wildcard_labels|max_wildcard_values",
}

NO_EFFECT: dict[str, str] = {
    "litellm_params.tags": "free-form, informational (documented as such)",
    "litellm_params.region_name": "informational; only part of the deployment's derived id",
    "retry_policy.BadRequestErrorRetries": "client errors are never retried (docs/routing.md, Retries)",
    "retry_policy.ContentPolicyViolationErrorRetries": "client errors are never retried (docs/routing.md, Retries)",
    "allowed_fails_policy.BadRequestErrorAllowedFails": "client errors never cool a deployment down",
    "allowed_fails_policy.ContentPolicyViolationErrorAllowedFails": "client errors never cool a deployment down",
    "guardrails[].guardrail_info": "LiteLLM's free-form guardrail metadata; accepted, informational",
    "guardrails[].litellm_params.description": "free-form, informational",
}

UNTESTED: dict[str, str] = {
    "ROUTERD_RELOAD_DEBOUNCE_MS": "reaches the file watcher (server/reload.py); no test shows bursts gathered by it",
    "provider_settings.organization": "sent as openai-organization by the OpenAI files client; no test checks it",
}

KNOWN_GAPS: dict[str, str] = {}
