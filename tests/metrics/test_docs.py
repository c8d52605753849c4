"""The metrics page (docs/operations/metrics.md) lists every metric routerd exports, with its type and exactly its labels."""

from __future__ import annotations

import re

from docs_pages import doc_page
from prometheus_client import CollectorRegistry

from routerd.metrics import RouterdMetrics

DOC = doc_page("operations/metrics.md")
_ROW = re.compile(r"^\| `(routerd_[a-z0-9_]+)` \| (\w+)[^|]*\|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    """metric -> (type, labels) from the tables of the metrics page."""
    return {name: (kind, set(re.findall(r"`([a-z_]+)`", labels))) for name, kind, labels in _ROW.findall(DOC)}


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
        exported[name] = (family.type, set(attribute.labelnames))
    assert set(rows) == set(exported)
    for name, (kind, labels) in exported.items():
        assert rows[name] == (kind, labels), name
