"""docs/metrics.md lists every metric routerd exports, with its type and exactly its labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from routerd.metrics import RouterdMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(routerd_[a-z0-9_]+)` \| (\w+)[^|]*\|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    """metric -> (type, labels) from the tables in docs/metrics.md."""
    return {
        name: (kind, set(re.findall(r"`([a-z_]+)`", labels)))
        for name, kind, labels in _ROW.findall(DOC.read_text())
    }


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    rows = documented()
    metrics = RouterdMetrics(CollectorRegistry())
    exported = {}
    for attribute in vars(metrics).values():
        describe = getattr(attribute, "describe", None)
        if describe is None or attribute is metrics.registry:
            continue
        (family,) = describe()
        name = family.name + ("_total" if family.type == "counter" else "")
        exported[name] = (family.type, set(attribute._labelnames))
    assert set(rows) == set(exported)
    for name, (kind, labels) in exported.items():
        assert rows[name] == (kind, labels), name
