"""deploy/grafana: the dashboard is valid JSON whose queries use metrics routerd exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import DEPLOY, exported_sample_names, load_yaml, metric_names

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "routerd.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["name"], variable["definition"]
    for annotation in dashboard["annotations"]["list"]:
        yield annotation["name"], annotation["expr"]


def test_every_query_names_metrics_routerd_exports(dashboard: dict[str, Any]) -> None:
    known = exported_sample_names()
    used: set[str] = set()
    for where, expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, (where, expr)  # every query is about routerd
        assert names <= known, (where, names - known)
        used |= names
    # the dashboard shows every family (histograms through their buckets)
    families = {name.removesuffix("_total").removesuffix("_bucket") for name in used}
    expected = {
        name.removesuffix("_total").removesuffix("_bucket")
        for name in known
        if not name.endswith(("_sum", "_count"))
    }
    assert families == expected, expected - families


def test_panels_have_unique_ids_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_queries_use_the_datasource_variable_defaulting_to_the_provisioned_one(
    dashboard: dict[str, Any],
) -> None:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    provisioned = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert variable["current"]["value"] == provisioned["datasources"][0]["uid"]
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "routerd"
    assert dashboard["title"] == "routerd"
