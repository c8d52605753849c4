from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routerd.routing.backoff import full_jitter, retry_delay


@given(
    retry=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=120.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_jitter_never_exceeds_cap_or_exponential_ceiling(
    retry: int, base: float, cap: float, seed: int
) -> None:
    delay = full_jitter(retry, base, cap, random.Random(seed))
    assert 0.0 <= delay <= cap
    assert delay <= base * 2.0 ** min(max(retry - 1, 0), 60)


@given(
    retry=st.integers(min_value=1, max_value=50),
    retry_after=st.floats(min_value=0.001, max_value=1000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_honours_retry_after_and_its_cap(retry: int, retry_after: float, seed: int) -> None:
    delay = retry_delay(
        retry, base=0.5, cap=8.0, rng=random.Random(seed), retry_after=retry_after, max_retry_after=60.0
    )
    assert delay >= min(retry_after, 60.0)
    # The jittered part stays under the cap; only the server's delay may take it higher, and that is capped.
    assert delay <= max(8.0, min(retry_after, 60.0))


def test_delay_grows_exponentially_until_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # the ceiling of each jitter range

    ceilings = [retry_delay(n, base=0.5, cap=8.0, rng=Top()) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_minimum_applies_and_no_retry_after_means_pure_jitter() -> None:
    rng = random.Random(3)
    assert retry_delay(1, base=0.5, cap=8.0, rng=rng, minimum=2.0) >= 2.0
    samples = [retry_delay(1, base=0.5, cap=8.0, rng=rng) for _ in range(2000)]
    assert max(samples) <= 0.5
    # full jitter: spread over the whole range, not clustered at the top
    assert min(samples) < 0.05 and sum(samples) / len(samples) == pytest.approx(0.25, abs=0.03)


def test_zero_base_or_cap_means_no_sleep() -> None:
    assert full_jitter(3, 0.0, 8.0, random.Random(1)) == 0.0
    assert full_jitter(3, 0.5, 0.0, random.Random(1)) == 0.0
