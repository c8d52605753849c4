from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from routerd.config.table import RetryPolicy, RouterPolicy
from routerd.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    RateLimitError,
    RequestTooLargeError,
    Timeout,
    UnprocessableEntityError,
    UnsupportedParamsError,
)
from routerd.routing.options import DEFAULT_OPTIONS, RequestOptions
from routerd.routing.recovery import (
    CONTENT_POLICY,
    CONTEXT_WINDOW,
    DEFAULT,
    ERROR,
    fallback_reason,
    next_fallback,
    retries_allowed,
)

NON_RETRYABLE: list[OpenAIError] = [
    BadRequestError("400"),
    ContextWindowExceededError("ctx"),
    ContentPolicyViolationError("policy"),
    UnsupportedParamsError("param"),
    RequestTooLargeError("413"),
    UnprocessableEntityError("422"),
]


def test_non_retryable_errors_get_no_retries_whatever_the_policy() -> None:
    generous = RetryPolicy(bad_request=5, content_policy=5)
    for error in NON_RETRYABLE:
        assert retries_allowed(error, 10, generous, None) == 0
        assert retries_allowed(error, 10, generous, 7) == 0


def test_retryable_errors_use_the_budget_with_policy_and_request_overrides() -> None:
    policy = RetryPolicy(rate_limit=1, timeout=0)
    assert retries_allowed(InternalServerError("500"), 3, policy, None) == 3
    assert retries_allowed(APIConnectionError("conn"), 3, policy, None) == 3
    assert retries_allowed(RateLimitError("429"), 3, policy, None) == 1
    assert retries_allowed(Timeout("t"), 3, policy, None) == 0
    assert retries_allowed(Timeout("t"), 3, policy, 2) == 2  # the request's num_retries wins


def test_upstream_auth_errors_get_the_budget_for_other_deployments() -> None:
    assert retries_allowed(AuthenticationError("401"), 3, RetryPolicy(), None) == 3
    assert retries_allowed(NotFoundError("404"), 3, RetryPolicy(authentication=1), None) == 1
    assert retries_allowed(AuthenticationError("401"), 3, RetryPolicy(authentication=0), 5) == 5


def test_fallback_reason_by_class() -> None:
    assert fallback_reason(ContextWindowExceededError("x")) == CONTEXT_WINDOW
    assert fallback_reason(ContentPolicyViolationError("x")) == CONTENT_POLICY
    assert fallback_reason(RateLimitError("x")) == ERROR
    assert fallback_reason(AuthenticationError("x")) == ERROR
    assert fallback_reason(BadRequestError("x")) is None
    assert fallback_reason(UnprocessableEntityError("x")) is None


POLICY = RouterPolicy(
    fallbacks={"a": ("b", "c")},
    context_window_fallbacks={"a": ("big",)},
    content_policy_fallbacks={"a": ("lenient",)},
    default_fallbacks=("anything",),
    max_fallbacks=5,
)


def test_targets_depend_on_the_reason() -> None:
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "a", ERROR, ["a"], 0) == ("b", ERROR)
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "a", ERROR, ["a", "b"], 1) == ("c", ERROR)
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "a", CONTEXT_WINDOW, ["a"], 0) == ("big", CONTEXT_WINDOW)
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "a", CONTENT_POLICY, ["a"], 0) == (
        "lenient",
        CONTENT_POLICY,
    )
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "z", ERROR, ["z"], 0) == ("anything", DEFAULT)
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "z", CONTEXT_WINDOW, ["z"], 0) is None
    assert next_fallback(POLICY, DEFAULT_OPTIONS, "a", None, ["a"], 0) is None


def test_request_overrides_and_disable() -> None:
    options = RequestOptions(fallbacks=("x",), context_window_fallbacks=())
    assert next_fallback(POLICY, options, "a", ERROR, ["a"], 0) == ("x", ERROR)
    assert next_fallback(POLICY, options, "a", CONTEXT_WINDOW, ["a"], 0) is None
    assert next_fallback(POLICY, RequestOptions(disable_fallbacks=True), "a", ERROR, ["a"], 0) is None
    # an explicit empty list for the group means "no fallbacks", not "use default_fallbacks"
    explicit_none = RouterPolicy(fallbacks={"a": ()}, default_fallbacks=("d",))
    assert next_fallback(explicit_none, DEFAULT_OPTIONS, "a", ERROR, ["a"], 0) is None


group_names = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@given(
    graph=st.dictionaries(group_names, st.lists(group_names, max_size=6).map(tuple), max_size=6),
    default=st.lists(group_names, max_size=4).map(tuple),
    max_fallbacks=st.integers(min_value=0, max_value=8),
    reasons=st.lists(st.sampled_from([ERROR, CONTEXT_WINDOW, CONTENT_POLICY]), min_size=10, max_size=10),
)
def test_fallback_chains_never_loop_and_stop_at_max_fallbacks(
    graph: dict[str, tuple[str, ...]], default: tuple[str, ...], max_fallbacks: int, reasons: list[str]
) -> None:
    policy = RouterPolicy(
        fallbacks=graph,
        context_window_fallbacks=graph,
        content_policy_fallbacks=graph,
        default_fallbacks=default,
        max_fallbacks=max_fallbacks,
    )
    tried = ["a"]
    taken = 0
    for reason in reasons:  # every group fails, each time for some reason
        target = next_fallback(policy, DEFAULT_OPTIONS, "a", reason, tried, taken)
        if target is None:
            continue
        assert target[0] not in tried
        tried.append(target[0])
        taken += 1
    assert taken <= max_fallbacks
    assert len(tried) == len(set(tried))
