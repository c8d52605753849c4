"""The ``guardrails:`` section, in LiteLLM's shape, and its compilation into :class:`CompiledGuardrail`.

```yaml
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter     # or generic_guardrail_api, openai_moderation
      mode: [pre_call, post_call]           # pre_call | post_call | during_call | logging_only
      default_on: true
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
```

Every configured guardrail either runs or the file is rejected: an unknown ``guardrail`` type is an
error unless the entry sets ``skip_if_unsupported: true`` (then it is a loud warning), and keys a type
does not know are errors with a did-you-mean, never silently ignored.

A compiled guardrail is pure data (the content filter compiled; the webhook's and moderation's settings),
part of the routing table so a reload swaps it atomically; the server binds the network types to its
HTTP client when it serves a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from routerd.config.issues import closest_typo
from routerd.guardrails.modes import Mode

if TYPE_CHECKING:
    # the content filter's compiler is imported by compile_guardrails, when a file has guardrails
    from routerd.guardrails.content_filter import ContentFilter

__all__ = ["KNOWN_TYPES", "CompiledGuardrail", "GuardrailParams", "GuardrailSpec", "compile_guardrails"]

CONTENT_FILTER = "litellm_content_filter"
WEBHOOK = "generic_guardrail_api"
MODERATION = "openai_moderation"
KNOWN_TYPES = (CONTENT_FILTER, WEBHOOK, MODERATION)

_COMMON_KEYS = {"guardrail", "mode", "default_on", "skip_if_unsupported", "description"}
TYPE_KEYS: Mapping[str, frozenset[str]] = {
    CONTENT_FILTER: frozenset(
        {
            "patterns",
            "blocked_words",
            "blocked_words_file",
            "categories",
            "pattern_redaction_format",
            "keyword_redaction_tag",
            "stream_window",
        }
    ),
    WEBHOOK: frozenset(
        {
            "api_base",
            "api_key",
            "headers",
            "timeout",
            "fail_open",
            "additional_provider_specific_params",
            "stream_check_chars",
        }
    ),
    MODERATION: frozenset({"model", "categories", "timeout", "fail_open", "stream_check_chars"}),
}
#: Longest a guardrail service may take, whatever the file says.
MAX_TIMEOUT = 60.0
#: A service guardrail's ``stream_check_chars`` (routerd): the streamed text held back per check.
STREAM_CHECK_CHARS = 512
_STREAM_CHECK_RANGE = (16, 65536)


def _modes(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# The models here are built (defer_build) when a file first has a guardrails section, not at import:
# a gateway without guardrails does not pay for their validators at start-up.


class GuardrailParams(BaseModel):
    """A guardrail's ``litellm_params``: the common keys; each type's own keys are checked by type."""

    model_config = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True, defer_build=True)

    guardrail: Annotated[str, Field(min_length=1)] = Field(description="The guardrail type.")
    mode: Annotated[tuple[Mode, ...], BeforeValidator(_modes)] = Field(
        default=(Mode.PRE_CALL,), description="pre_call, post_call, during_call, logging_only, or a list."
    )
    default_on: bool = Field(default=False, description="Run on every call, not only calls that name it.")
    skip_if_unsupported: bool = Field(
        default=False,
        description="routerd: if this type is unknown, warn and skip instead of rejecting the file.",
    )
    description: str | None = None

    def type_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class GuardrailSpec(BaseModel):
    """One entry of ``guardrails:``."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)

    guardrail_name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    litellm_params: GuardrailParams
    guardrail_info: dict[str, Any] = Field(default_factory=dict)


class _WebhookParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)
    api_base: Annotated[str, Field(pattern=r"^https?://")]
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT)] = 5.0
    fail_open: bool = False
    additional_provider_specific_params: dict[str, Any] = Field(default_factory=dict)
    stream_check_chars: Annotated[
        int, Field(strict=True, ge=_STREAM_CHECK_RANGE[0], le=_STREAM_CHECK_RANGE[1])
    ] = STREAM_CHECK_CHARS


class _ModerationParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)
    model: Annotated[str, Field(min_length=1)]
    categories: tuple[str, ...] = ()
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT)] = 10.0
    fail_open: bool = False
    stream_check_chars: Annotated[
        int, Field(strict=True, ge=_STREAM_CHECK_RANGE[0], le=_STREAM_CHECK_RANGE[1])
    ] = STREAM_CHECK_CHARS


@dataclass(frozen=True, slots=True)
class CompiledGuardrail:
    """A guardrail as the routing table holds it (no I/O bound yet)."""

    name: str
    kind: str
    modes: frozenset[Mode]
    default_on: bool
    content_filter: ContentFilter | None = None
    stream_window: int = 256
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 5.0
    fail_open: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    categories: frozenset[str] = frozenset()
    stream_check_chars: int = STREAM_CHECK_CHARS


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake in a guardrail's declaration, at its YAML path."""

    path: tuple[Any, ...]
    message: str
    warning: bool = False
    at_key: bool = False


def compile_guardrails(
    specs: Sequence[tuple[int, GuardrailSpec]], base: Path, seen: dict[str, str] | None = None
) -> tuple[dict[str, CompiledGuardrail], list[Problem]]:
    """Compile every guardrail; problems carry the YAML path of what is wrong. Files read (keyword and
    category lists) are recorded in ``seen`` with their SHA-256."""
    compiled: dict[str, CompiledGuardrail] = {}
    problems: list[Problem] = []
    if not specs:
        return compiled, problems
    from routerd.guardrails.filter_spec import read_yaml_file

    reader = read_yaml_file(base, seen)
    for index, spec in specs:
        at: tuple[Any, ...] = ("guardrails", index)
        params = spec.litellm_params
        if spec.guardrail_name in compiled:
            problems.append(
                Problem((*at, "guardrail_name"), f"guardrail {spec.guardrail_name!r} is declared twice")
            )
            continue
        if params.guardrail not in TYPE_KEYS:
            message = f"unknown guardrail type {params.guardrail!r}; routerd runs {', '.join(KNOWN_TYPES)}"
            skip = params.skip_if_unsupported
            suffix = " (skipped: skip_if_unsupported)" if skip else ""
            problems.append(Problem((*at, "litellm_params", "guardrail"), message + suffix, warning=skip))
            continue
        extra = params.type_params()
        unknown = sorted(set(extra) - TYPE_KEYS[params.guardrail])
        if unknown:
            known = sorted(TYPE_KEYS[params.guardrail] | _COMMON_KEYS)
            for key in unknown:
                near = closest_typo(key, known)
                hint = f"; did you mean {near!r}?" if near else f"; known: {', '.join(known)}"
                message = f"not a key of {params.guardrail} guardrails{hint}"
                problems.append(Problem((*at, "litellm_params", key), message, at_key=True))
            continue
        try:
            compiled[spec.guardrail_name] = _compile_one(spec, extra, reader)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                message = error["msg"].removeprefix("Value error, ")
                problems.append(Problem((*at, "litellm_params", *error["loc"]), message))
        except ValueError as exc:
            problems.append(Problem((*at, "litellm_params"), str(exc)))
    return compiled, problems


def _compile_one(spec: GuardrailSpec, extra: dict[str, Any], reader: Any) -> CompiledGuardrail:
    params = spec.litellm_params
    common: dict[str, Any] = {
        "name": spec.guardrail_name,
        "kind": params.guardrail,
        "modes": frozenset(params.mode),
        "default_on": params.default_on,
    }
    if params.guardrail == CONTENT_FILTER:
        window = extra.pop("stream_window", 256)
        if not isinstance(window, int) or isinstance(window, bool) or not 16 <= window <= 65536:
            raise ValueError("stream_window must be a whole number from 16 to 65536")
        from routerd.guardrails.filter_spec import ContentFilterParams, compile_content_filter

        content = ContentFilterParams.model_validate(extra)
        return CompiledGuardrail(
            **common, content_filter=compile_content_filter(content, reader), stream_window=window
        )
    if params.guardrail == WEBHOOK:
        hook = _WebhookParams.model_validate(extra)
        headers = {k.lower(): v for k, v in hook.headers.items()}
        if hook.api_key:
            headers["authorization"] = f"Bearer {hook.api_key}"
        return CompiledGuardrail(
            **common,
            url=hook.api_base,
            headers=headers,
            timeout=hook.timeout,
            fail_open=hook.fail_open,
            params=dict(hook.additional_provider_specific_params),
            stream_check_chars=hook.stream_check_chars,
        )
    moderation = _ModerationParams.model_validate(extra)
    return CompiledGuardrail(
        **common,
        model=moderation.model,
        categories=frozenset(moderation.categories),
        timeout=moderation.timeout,
        fail_open=moderation.fail_open,
        stream_check_chars=moderation.stream_check_chars,
    )
