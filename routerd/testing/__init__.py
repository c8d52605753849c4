"""Fakes shipped with routerd for tests: a fake clock and fake upstreams speaking real wire formats.

* :class:`FakeClock`: monotonic and wall time that move only when told; an instant ``sleep``.
* :class:`FakeOpenAI` / :class:`FakeAzureOpenAI`: loopback HTTP servers answering like OpenAI and
  Azure OpenAI, with scripted :class:`Reply` s (errors, delays, hangs, cut or failing streams).
"""

from __future__ import annotations

from routerd.testing.clock import FakeClock
from routerd.testing.openai_fake import FakeAzureOpenAI, FakeOpenAI, Recorded, Reply, run_in_thread

__all__ = ["FakeAzureOpenAI", "FakeClock", "FakeOpenAI", "Recorded", "Reply", "run_in_thread"]
