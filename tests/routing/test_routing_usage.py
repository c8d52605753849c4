from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from routerd.routing.usage import UsageWindow


def test_counts_expire_after_the_window() -> None:
    window = UsageWindow()
    window.add(100.2, 10)
    window.add(130.0, 5)
    assert window.used(130.5) == (2, 15)
    assert window.used(160.99) == (2, 15)  # second 100 is still inside 100..160
    assert window.used(161.0) == (1, 5)
    assert window.used(191.0) == (0, 0)
    assert window.used(5000.0) == (0, 0)


def test_free_at_is_when_the_oldest_blocking_call_leaves() -> None:
    window = UsageWindow()
    window.add(10.5, 0)
    window.add(20.0, 0)
    assert window.free_at(30.0, 3, None, 0) == 30.0  # room for one more
    window.add(30.0, 0)
    assert window.free_at(30.0, 3, None, 0) == 71.0  # the call of second 10 leaves at 10 + 61
    assert window.free_at(71.0, 3, None, 0) == 71.0


def test_tpm_admits_an_oversized_call_only_into_an_empty_window() -> None:
    window = UsageWindow()
    assert window.free_at(0.0, None, 100, 500) == 0.0
    window.add(0.0, 500)
    assert window.free_at(1.0, None, 100, 1) == 61.0
    assert window.free_at(61.0, None, 100, 1) == 61.0


def test_adjust_corrects_estimates_while_in_the_window() -> None:
    window = UsageWindow()
    stamp = window.add(0.0, 10)
    window.adjust(5.0, stamp, 30)
    assert window.used(5.0) == (1, 40)
    window.adjust(5.0, stamp, -1000)  # never below zero
    assert window.used(5.0) == (1, 0)
    late = window.add(5.0, 7)
    window.adjust(100.0, late, 50)  # that second has left the window: ignored
    assert window.used(100.0) == (0, 0)


def test_zero_limit_never_fits() -> None:
    assert UsageWindow().free_at(0.0, 0, None, 1) == float("inf")


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=20),
    tpm=st.one_of(st.none(), st.integers(min_value=50, max_value=400)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_no_sixty_second_span_ever_exceeds_the_limits(rpm: int, tpm: int | None, seed: int) -> None:
    rng = random.Random(seed)
    window = UsageWindow()
    now = 0.0
    admitted: list[tuple[float, int]] = []
    for _ in range(600):
        now += rng.expovariate(1.0)  # ~1 call per second offered, far above most limits
        tokens = rng.randint(1, 40)
        if window.free_at(now, rpm, tpm, tokens) <= now:
            window.add(now, tokens)
            admitted.append((now, tokens))
    assert admitted
    for i, (end, _) in enumerate(admitted):
        span = [(t, n) for t, n in admitted[: i + 1] if t >= end - 60.0]
        assert len(span) <= rpm
        if tpm is not None:
            assert sum(n for _, n in span) <= tpm


def test_one_attempt_of_several_calls_counts_each_against_rpm() -> None:
    window = UsageWindow()
    window.add(0.0, 0, requests=4)  # a text completion of four prompts served through chat
    assert window.used(0.0) == (4, 0)
    assert window.free_at(1.0, 5, None, 0) == 1.0  # one more single call fits rpm 5
    assert window.free_at(1.0, 5, None, 0, requests=4) == 61.0  # four more do not, until it leaves
    # more calls than rpm at once fit only an empty window (else they could never be served)
    assert UsageWindow().free_at(0.0, 5, None, 0, requests=10) == 0.0
