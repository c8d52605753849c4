"""What routerd knows about LiteLLM's config keys beyond the ones it acts on.

routerd reads LiteLLM's ``config.yaml`` shape so users can bring the file they already have. LiteLLM
accepts many settings routerd has no use for (spend tracking, logging integrations, caching, the
admin UI). Those are *accepted with a warning* ("accepted but not acted on"): a file that works with
LiteLLM also loads here, and nothing is silently dropped. Keys that are neither acted on nor listed
here are warnings too, unless they look like a typo of a known key of the same section: those are
errors with a did-you-mean (see :mod:`routerd.config.triage`).
"""

from __future__ import annotations

#: ``router_settings.routing_strategy`` values. ``order`` is accepted for files that name it, but the
#: per-deployment ``order`` tiers apply under every strategy.
ROUTING_STRATEGIES: tuple[str, ...] = (
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
    "order",
)

#: Providers ``files_settings`` / ``finetune_settings`` entries may name.
FILE_PROVIDERS: tuple[str, ...] = ("openai", "azure", "vertex_ai")

#: Callback names routerd acts on (``litellm_settings.callbacks``); others are warned about.
KNOWN_CALLBACKS = frozenset({"prometheus", "otel"})

#: Providers that are commonly run without an API key (local servers); no missing-key warning.
KEYLESS_PROVIDERS = frozenset({"mock", "hosted_vllm", "lm_studio", "ollama"})

#: The built-in mock provider's fault settings (read by routerd.providers.mock.MockSettings).
MOCK_PARAMS = frozenset(
    {
        "mock_latency_ms",
        "mock_stream_chunk_delay_ms",
        "mock_error_status",
        "mock_error_rate",
        "mock_error_code",
        "mock_error_message",
        "mock_retry_after",
        "mock_hang",
        "mock_stream_cut_after",
        "mock_embedding_dim",
        "mock_seed",
    }
)

#: ``litellm_params`` keys that are not routerd settings but are well known to be provider specific
#: or per-call defaults. They pass through to the adapter (``Deployment.extra``) without a typo check;
#: other unknown keys pass through too unless they look like a misspelt known key.
PASSTHROUGH_PARAMS = frozenset(
    {
        # per-call OpenAI parameters used as defaults for every call to the deployment
        "temperature",
        "top_p",
        "top_k",
        "top_a",
        "min_p",
        "n",
        "stream",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "logit_bias",
        "user",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "thinking",
        "extra_headers",
        "headers",
        "extra_body",
        "metadata",
        # Azure
        "api_type",
        "azure_ad_token",
        "azure_ad_token_provider",
        "azure_username",
        "azure_password",
        "azure_scope",
        "tenant_id",
        "client_id",
        "client_secret",
        # Vertex AI / Gemini
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "safety_settings",
        # AWS
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "aws_role_name",
        "aws_session_name",
        "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint",
        "aws_sts_endpoint",
        # Cloudflare Workers AI (routerd.providers.presets)
        "account_id",
        "additional_drop_params",
        "cache_control_injection_points",  # checked by routerd.config.checks
        # LiteLLM bookkeeping that has no effect on the upstream call
        "base_model",
        "input_cost_per_second",
        "output_cost_per_second",
        "litellm_credential_name",
        "use_in_pass_through",
        "use_litellm_proxy",
        "merge_reasoning_content_in_choices",
        "configurable_clientside_auth_params",
    }
    | MOCK_PARAMS
)

#: Top-level LiteLLM sections routerd ignores.
IGNORED_TOP_LEVEL: dict[str, str] = {
    "callback_settings": "per-callback settings of LiteLLM logging integrations",
    "assistant_settings": "the Assistants API",
    "credential_list": "stored credentials",
    "mcp_servers": "MCP servers",
    "search_tools": "search tools",
    "vector_store_registry": "vector stores",
    "prompts": "prompt management",
}

_GUARDRAILS_MOVE = (
    "guardrails are declared in the top-level `guardrails:` list (LiteLLM's current shape); a guardrail "
    "routerd cannot run is never silently skipped, so this file is rejected until they move"
)
#: Settings whose effect routerd cannot give and must not silently drop: errors, with the reason.
REJECTED_SETTINGS: dict[tuple[str, str], str] = {
    ("litellm_settings", "guardrails"): _GUARDRAILS_MOVE,
    ("router_settings", "guardrail_list"): _GUARDRAILS_MOVE,
}

#: ``router_settings`` keys of LiteLLM's Router that routerd does not implement.
IGNORED_ROUTER_SETTINGS: dict[str, str] = {
    "cache_responses": "response caching",
    "cache_kwargs": "response caching",
    "caching_groups": "response caching",
    "client_ttl": "routerd keeps one connection pool per deployment",
    "default_litellm_params": "default call parameters",
    "default_max_parallel_requests": "parallel request limits",
    "default_priority": "the request scheduler",
    "polling_interval": "the request scheduler",
    "debug_level": "use ROUTERD_LOG_LEVEL",
    "set_verbose": "use ROUTERD_LOG_LEVEL",
    "alerting_config": "alerting; use the Prometheus alert rules in deploy/",
    "assistants_config": "the Assistants API",
    "provider_budget_config": "budgets",
    "model_group_retry_policy": "per-group retry policies; use retry_policy or litellm_params.num_retries",
    "router_general_settings": "LiteLLM SDK optimisations",
    "optional_pre_call_checks": "LiteLLM's optional pre-call checks",
    "deployment_affinity_ttl_seconds": "deployment affinity",
    "ignore_invalid_deployments": "routerd never starts with an invalid deployment",
    "enable_tag_filtering": "tag-based routing",
    "tag_filtering_match_any": "tag-based routing",
    "search_tools": "search tools",
}

#: ``litellm_settings`` keys that exist in LiteLLM and routerd does not act on.
IGNORED_LITELLM_SETTINGS: dict[str, str] = {
    "service_callback": "service health callbacks",
    "service_callbacks": "service health callbacks",
    "redact_user_api_key_info": "routerd never logs keys",
    "redact_messages_in_exceptions": "routerd never logs messages",
    "log_raw_request_response": "callbacks do not get the raw upstream request",
    "langfuse_default_tags": "the Langfuse integration",
    "enable_preview_features": "preview features",
    "set_verbose": "use ROUTERD_LOG_LEVEL",
    "json_logs": "use ROUTERD_LOG_FORMAT",
    "force_ipv4": "IPv4-only connections",
    "mcp_aliases": "MCP servers",
    "disable_end_user_cost_tracking": "end-user cost tracking",
    "disable_end_user_cost_tracking_prometheus_only": "end-user cost tracking",
    "key_generation_settings": "virtual keys",
    "disable_add_transform_inline_image_block": "Fireworks image URL rewriting",
    "disable_hf_tokenizer_download": "routerd estimates tokens without tokenizer downloads",
    "enable_json_schema_validation": "response JSON schema validation",
    "enable_key_alias_format_validation": "virtual keys",
    "disable_copilot_system_to_assistant": "GitHub Copilot",
    "use_chat_completions_url_for_anthropic_messages": "the /v1/messages endpoint",
    "max_budget": "budgets",
    "budget_duration": "budgets",
    "max_internal_user_budget": "budgets",
    "internal_user_budget_duration": "budgets",
    "default_team_settings": "teams",
    "public_teams": "teams",
    "upperbound_key_generate_params": "virtual keys",
    "default_key_generate_params": "virtual keys",
    "default_internal_user_params": "internal users",
    "ssl_verify": "TLS verification is always on",
    "telemetry": "routerd sends no telemetry",
    "max_parallel_requests": "parallel request limits",
    "return_response_headers": "response header passthrough",
    "enable_loadbalancing_on_batch_endpoints": "the batches API",
    "check_provider_endpoint": "provider model listing",
}

#: ``general_settings`` keys of LiteLLM's proxy that routerd does not act on.
IGNORED_GENERAL_SETTINGS: dict[str, str] = {
    key: "LiteLLM proxy feature"
    for key in (
        "completion_model",
        "store_prompts_in_spend_logs",
        "forward_client_headers_to_llm_api",
        "disable_spend_logs",
        "disable_spend_updates",
        "disable_master_key_return",
        "disable_retry_on_max_parallel_request_limit_error",
        "disable_reset_budget",
        "disable_adding_master_key_hash_to_db",
        "disable_responses_id_security",
        "enable_jwt_auth",
        "enforce_user_param",
        "reject_clientside_metadata_tags",
        "allowed_routes",
        "key_management_system",
        "key_management_settings",
        "maximum_spend_logs_retention_period",
        "maximum_spend_logs_retention_interval",
        "user_mcp_management_mode",
        "database_url",
        "database_connection_pool_limit",
        "database_connection_timeout",
        "allow_requests_on_db_unavailable",
        "custom_auth",
        "max_parallel_requests",
        "global_max_parallel_requests",
        "infer_model_from_keys",
        "background_health_checks",
        "health_check_interval",
        "health_check_details",
        "alerting",
        "alerting_threshold",
        "alerting_args",
        "alert_types",
        "alert_to_webhook_url",
        "use_client_credentials_pass_through_routes",
        "public_routes",
        "admin_only_routes",
        "enforced_params",
        "enable_oauth2_auth",
        "enable_oauth2_proxy_auth",
        "oauth2_config_mappings",
        "use_x_forwarded_for",
        "service_account_settings",
        "image_generation_model",
        "embedding_model",
        "moderation_model",
        "store_model_in_db",
        "supported_db_objects",
        "max_response_size_mb",
        "proxy_budget_rescheduler_min_time",
        "proxy_budget_rescheduler_max_time",
        "proxy_batch_write_at",
        "proxy_batch_polling_interval",
        "custom_key_generate",
        "allowed_ips",
        "default_team_disabled",
        "allow_user_auth",
        "user_api_key_cache_ttl",
        "disable_prisma_schema_update",
        "litellm_key_header_name",
        "custom_sso",
        "allow_client_side_credentials",
        "use_azure_key_vault",
        "use_google_kms",
        "spend_report_frequency",
        "ui_access_mode",
        "litellm_jwtauth",
        "litellm_license",
        "pass_through_endpoints",
        "forward_openai_org_id",
    )
}

#: Sections whose unknown keys are warnings (LiteLLM maps them onto open-ended module attributes).
OPEN_SECTIONS = frozenset({"litellm_settings", "general_settings"})

IGNORED_BY_SECTION: dict[str, dict[str, str]] = {
    "": IGNORED_TOP_LEVEL,
    "router_settings": IGNORED_ROUTER_SETTINGS,
    "litellm_settings": IGNORED_LITELLM_SETTINGS,
    "general_settings": IGNORED_GENERAL_SETTINGS,
}


#: Keys that look like a typo of a known key of their section but are not one: the note is the warning.
LOOKALIKES: dict[str, dict[str, str]] = {
    "router_settings": {
        "enable_cooldowns": "not a LiteLLM or routerd setting; ignored (cooldowns are on by default; "
        "to turn them off write disable_cooldowns: true)",
    },
}

#: ``model_info`` keys LiteLLM knows (prices, capabilities, bookkeeping). Kept as metadata without a
#: typo check; routerd reads only the ones declared in :class:`routerd.config.models.ModelInfoSpec`.
MODEL_INFO_KEYS = frozenset(
    {
        "max_tokens",
        "input_cost_per_audio_token",
        "output_cost_per_audio_token",
        "input_cost_per_audio_per_second",
        "input_cost_per_character",
        "output_cost_per_character",
        "input_cost_per_image",
        "output_cost_per_image",
        "input_cost_per_pixel",
        "output_cost_per_pixel",
        "input_cost_per_second",
        "output_cost_per_second",
        "input_cost_per_query",
        "input_cost_per_request",
        "input_cost_per_token_batches",
        "output_cost_per_token_batches",
        "input_cost_per_token_above_128k_tokens",
        "output_cost_per_token_above_128k_tokens",
        "input_cost_per_token_above_200k_tokens",
        "output_cost_per_token_above_200k_tokens",
        "output_cost_per_reasoning_token",
        "cache_creation_input_token_cost",
        "cache_read_input_token_cost",
        "cache_creation_input_audio_token_cost",
        "cache_read_input_audio_token_cost",
        "litellm_provider",
        "supports_function_calling",
        "supports_parallel_function_calling",
        "supports_vision",
        "supports_response_schema",
        "supports_tool_choice",
        "supports_system_messages",
        "supports_prompt_caching",
        "supports_audio_input",
        "supports_audio_output",
        "supports_reasoning",
        "supports_pdf_input",
        "supports_web_search",
        "supports_computer_use",
        "supports_native_streaming",
        "supports_embedding_image_input",
        "supported_openai_params",
        "output_vector_size",
        "tier",
        "description",
        "access_groups",
        "team_id",
        "team_public_model_name",
        "db_model",
        "health_check_model",
        "health_check_timeout",
        "use_in_pass_through",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "key",
        "tpm",
        "rpm",
    }
)

#: ``model_info.mode`` values of endpoints routerd does not serve yet: such a deployment loads with a
#: warning and answers every call with a 400 that says why.
UNSUPPORTED_MODES: dict[str, str] = {
    "image_generation": "image generation",
    "image_edit": "image editing",
    "audio_transcription": "audio transcription",
    "audio_speech": "text to speech",
    "video_generation": "video generation",
    "realtime": "the realtime API",
    "ocr": "OCR",
}

#: Providers whose models are audio only (speech to text, text to speech).
AUDIO_PROVIDERS = frozenset({"elevenlabs", "deepgram", "assemblyai"})

#: Bare model-name prefixes of OpenAI's audio and image models (no chat or embeddings).
AUDIO_IMAGE_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("whisper", "audio transcription"),
    ("tts-", "text to speech"),
    ("gpt-4o-transcribe", "audio transcription"),
    ("gpt-4o-mini-transcribe", "audio transcription"),
    ("gpt-4o-mini-tts", "text to speech"),
    ("dall-e", "image generation"),
    ("gpt-image", "image generation"),
)

#: The error code of the 400 such deployments answer with.
UNSUPPORTED_CODE = "unsupported_by_routerd"
