"""deploy/compose.yaml: parses, and every file and name it refers to exists (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from .conftest import DEPLOY, load_yaml

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = load_yaml(COMPOSE)
    return dict(compose["services"])


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of each bind mount (named volumes are skipped)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / source).resolve(), PurePosixPath(target)))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a file inside the container comes from, through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for source, target in bind_mounts(service):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    return None


def test_the_stack_has_routerd_prometheus_and_grafana(services: dict[str, Any]) -> None:
    assert {"routerd", "prometheus", "grafana"} <= set(services)


def test_the_routerd_image_builds_from_files_that_exist(services: dict[str, Any]) -> None:
    build = services["routerd"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert (context / "pyproject.toml").is_file()
    assert (context / build["dockerfile"]).is_file()


def test_every_bind_mount_source_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert source.exists(), (name, source)


def test_routerd_serves_the_example_config_through_a_directory_mount(services: dict[str, Any]) -> None:
    routerd = services["routerd"]
    config = routerd["environment"]["ROUTERD_CONFIG"]
    source = host_path(routerd, config)
    assert source is not None and source.is_file(), config
    assert source.resolve() == (DEPLOY.parent / "configs" / "example.yaml").resolve()
    # the directory is mounted, not the file, so hot reload sees rename-over-the-file edits
    assert all(source.is_dir() for source, _ in bind_mounts(routerd))
    assert routerd["environment"]["ROUTERD_HOST"] == "0.0.0.0"


def test_prometheus_gets_its_config_and_rules(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    config = host_path(prometheus, flags["--config.file"])
    assert config is not None and config.is_file()
    rules = load_yaml(config)["rule_files"]
    assert all((config.parent / rule).is_file() for rule in rules)


def test_grafana_provisioning_points_at_mounted_dashboards_and_the_prometheus_service(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in services
    (provider,) = load_yaml(provisioning / "dashboards" / "routerd.yml")["providers"]
    dashboards = host_path(grafana, provider["options"]["path"])
    assert dashboards is not None and sorted(p.name for p in dashboards.glob("*.json")) == ["routerd.json"]
    home = host_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


def test_the_stop_grace_period_outlasts_the_drain(services: dict[str, Any]) -> None:
    from routerd.settings import Settings

    grace = float(services["routerd"]["stop_grace_period"].rstrip("s"))
    assert grace > Settings().drain_timeout


def test_two_replicas_share_state_through_the_redis_service(services: dict[str, Any]) -> None:
    replicas = [s for s in services.values() if s.get("image") == services["routerd"]["image"]]
    assert len(replicas) == 2
    assert "redis" in services and "redis-server" in services["redis"]["command"]
    for replica in replicas:
        environment = replica["environment"]
        assert environment["ROUTERD_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["ROUTERD_STATE_PROCESSES"] == str(len(replicas))
        assert "redis" in replica["depends_on"]
    published = {port.split(":")[0] for replica in replicas for port in replica["ports"]}
    assert len(published) == 2  # each replica on its own host port
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "routerd"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:4000" for name, s in services.items() if s in replicas}
