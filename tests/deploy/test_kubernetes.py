"""deploy/kubernetes: manifests parse and agree with each other, with the image, and with routerd."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest

from routerd.config import load_config
from routerd.testing.server import RouterdServer

from .conftest import DEPLOY, load_yaml, load_yaml_all

K8S = DEPLOY / "kubernetes"
REDIS = "routerd-redis"


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """kind -> routerd's one manifest of that kind (every file listed by the kustomization but Redis)."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    found: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml_all(K8S / resource):
            if doc["metadata"]["name"] == REDIS:
                continue
            assert doc["kind"] not in found, doc["kind"]
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def redis_manifests() -> dict[str, dict[str, Any]]:
    """kind -> the Redis manifest of that kind (redis.yaml)."""
    return {doc["kind"]: doc for doc in load_yaml_all(K8S / "redis.yaml")}


@pytest.fixture(scope="module")
def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (routerd,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(routerd)


def env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_the_kustomization_lists_every_manifest(manifests: dict[str, dict[str, Any]]) -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(manifests) == {"ConfigMap", "Secret", "Deployment", "Service"}


def test_three_replicas_share_state_through_the_redis_service(
    manifests: dict[str, dict[str, Any]],
    redis_manifests: dict[str, dict[str, Any]],
    container: dict[str, Any],
) -> None:
    assert "redis.yaml" in load_yaml(K8S / "kustomization.yaml")["resources"]
    replicas = manifests["Deployment"]["spec"]["replicas"]
    assert replicas == 3
    variables = env(container)
    assert variables["ROUTERD_REDIS_URL"] == f"redis://{REDIS}:6379/0"
    workers = int(variables.get("ROUTERD_WORKERS", "1"))
    assert int(variables["ROUTERD_STATE_PROCESSES"]) == replicas * workers
    service, deployment = redis_manifests["Service"], redis_manifests["Deployment"]
    assert service["metadata"]["name"] == REDIS and service["spec"]["ports"][0]["port"] == 6379
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    # routerd's Service must not select the Redis pods
    routerd_selector = manifests["Service"]["spec"]["selector"]
    assert not all(pod_labels.get(k) == v for k, v in routerd_selector.items())


def test_probes_use_routerds_health_endpoints(container: dict[str, Any]) -> None:
    from routerd.server.app import core_routes

    served = {getattr(route, "path", None) for route in core_routes()}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in served
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["name"]


def test_the_config_is_a_directory_mount_so_hot_reload_works(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    # subPath mounts are copies that never see ConfigMap updates
    assert "subPath" not in mount
    config = PurePosixPath(env(container)["ROUTERD_CONFIG"])
    assert config.parent == PurePosixPath(mount["mountPath"])
    assert config.name in manifests["ConfigMap"]["data"]


def test_keys_come_from_the_secret_and_cover_every_env_reference(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    secret = manifests["Secret"]
    (source,) = container["envFrom"]
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    config_text = manifests["ConfigMap"]["data"]["config.yaml"]
    referenced = set(re.findall(r"os\.environ/([A-Z0-9_]+)", config_text))
    assert referenced <= set(secret["stringData"]) | set(env(container))
    assert "ROUTERD_MASTER_KEY" in referenced  # the gateway is not left open


def test_the_configmaps_routing_file_is_valid(
    manifests: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in manifests["Secret"]["stringData"].items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(manifests["ConfigMap"]["data"]["config.yaml"])
    table = load_config(path)
    assert {"gpt-4o-mini", "claude-3-5-haiku"} <= set(table.public_names())


def test_the_service_selects_the_pods_on_the_named_port(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    service, deployment = manifests["Service"], manifests["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == container["ports"][0]["name"]
    assert container["ports"][0]["containerPort"] == int(env(container)["ROUTERD_PORT"])


def test_runs_as_the_images_non_root_user_and_outlasts_the_drain(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    user = next(
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # with a read-only root, /tmp must be writable (multiprocess metrics files)
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    drain = float(env(container)["ROUTERD_DRAIN_TIMEOUT"])
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > drain + pre_stop


# --- the kubelet's ConfigMap update, end to end ----------------------------------------------------


def kubelet_publish(volume: Path, files: dict[str, str], version: str) -> None:
    """Write ``files`` the way the kubelet updates a ConfigMap volume: a new timestamped directory,
    an atomic swap of the ``..data`` symlink, and per-key symlinks through ``..data``."""
    target = volume / f"..{version}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    staging = volume / "..data_tmp"
    staging.symlink_to(target.name)
    staging.replace(volume / "..data")
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_configmap_update_is_reloaded_live(
    manifests: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in manifests["Secret"]["stringData"].items():
        monkeypatch.setenv(name, value)
    original = manifests["ConfigMap"]["data"]["config.yaml"]
    kubelet_publish(tmp_path, {"config.yaml": original}, "2024_01_01_00_00_00.1")
    updated = original.replace(
        "model_list:\n",
        "model_list:\n  - model_name: added-by-update\n    litellm_params:\n      model: mock/added\n",
        1,
    )
    assert updated != original

    with RouterdServer.from_file(tmp_path / "config.yaml", watch=True, reload_debounce_ms=10) as server:
        assert server.state.reload.generation == 1
        kubelet_publish(tmp_path, {"config.yaml": updated}, "2024_01_01_00_01_00.2")
        wait_until(lambda: server.state.reload.generation == 2)
        assert "added-by-update" in server.state.table.public_names()
        key = manifests["Secret"]["stringData"]["ROUTERD_MASTER_KEY"]
        models = httpx.get(f"{server.base_url}/v1/models", headers={"authorization": f"Bearer {key}"}).json()
        assert "added-by-update" in {m["id"] for m in models["data"]}
