"""deploy/k8s/, checked offline: every manifest against the Kubernetes schemas
(kubernetes-validate ships them; no cluster here), and against each other and
the program (shard count = replicas, probe paths served, settings that load,
secrets that exist, resources sized for 2,500 gateways per pod)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from envoy_ingest.service.server import PATHS
from envoy_ingest.settings import load_settings
from envoy_ingest.shard import Shard, parse_shard, select

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
MANIFESTS = ("configmap.yaml", "secret.yaml", "service.yaml", "statefulset.yaml", "pdb.yaml")
VERSION = kubernetes_validate.latest_version()


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return data


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_for_kubernetes(name: str) -> None:
    kubernetes_validate.validate(load(name), VERSION, strict=True)


def test_the_validator_catches_a_broken_manifest() -> None:
    broken = load("statefulset.yaml")
    broken["spec"]["replicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)
    unknown = load("pdb.yaml")
    unknown["spec"]["maxUnavailabe"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(MANIFESTS)
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted((*MANIFESTS, "kustomization.yaml"))


def container() -> dict[str, Any]:
    pod = load("statefulset.yaml")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return dict(c)


def test_statefulset_shards_probes_and_volumes() -> None:
    sts = load("statefulset.yaml")
    spec = sts["spec"]
    c = container()
    env = {e["name"]: e["value"] for e in c["env"]}
    replicas = spec["replicas"]
    # Pod I of the StatefulSet polls shard I of replicas.
    assert env["ENVOY_INGEST_SHARD"] == f"auto/{replicas}"
    for i in range(replicas):
        assert parse_shard(env["ENVOY_INGEST_SHARD"], f"{sts['metadata']['name']}-{i}") == Shard(
            i, replicas
        )
    assert spec["serviceName"] == load("service.yaml")["metadata"]["name"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert load("service.yaml")["spec"]["selector"].items() <= labels.items()
    # Probes ask what the health server serves, on the port it listens on.
    assert env["ENVOY_INGEST_HEALTH__ENABLED"] == "true"
    assert env["ENVOY_INGEST_HEALTH__LISTEN"] == "0.0.0.0:9842"
    assert c["ports"] == [{"name": "health", "containerPort": 9842}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/healthz", "/readyz"} <= set(PATHS)
    # Each replica its own state volume, where STATE_DIRECTORY points.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["STATE_DIRECTORY"]
    volumes = {v["name"] for v in spec["template"]["spec"]["volumes"]}
    assert set(mounts) == volumes | {claim["metadata"]["name"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_resources_fit_2500_gateways_per_pod() -> None:
    resources = container()["resources"]
    need_mb = 60 + 60 * 2500 / 1000  # the fleet aim: 60 MB + 60 KB per gateway
    assert mebibytes(resources["requests"]["memory"]) * 1.048576 >= need_mb
    assert mebibytes(resources["limits"]["memory"]) >= 2 * mebibytes(
        resources["requests"]["memory"]
    )
    # The spool fits its volume.
    (claim,) = load("statefulset.yaml")["spec"]["volumeClaimTemplates"]
    volume_bytes = mebibytes(claim["spec"]["resources"]["requests"]["storage"]) * 2**20
    settings = load("configmap.yaml")["data"]["settings.toml"]
    assert "max_bytes = 4294967296" in settings
    assert volume_bytes > 4294967296


def test_configmap_settings_load_with_the_secret_mounted(tmp_path: Path) -> None:
    data = load("configmap.yaml")["data"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in load("secret.yaml")["stringData"].items():
        (secrets / key).write_text(value)
    for name, text in data.items():
        (tmp_path / name).write_text(text.replace("/run/secrets/envoy-ingest", str(secrets)))
    settings = load_settings(tmp_path / "settings.toml")
    assert settings.influxdb is not None
    assert settings.influxdb.token is not None
    assert [gw.name for gw in settings.gateways] == ["school-north", "school-south"]
    assert settings.gateways[0].token is not None
    # Every gateway is polled by exactly one of the replicas.
    replicas = load("statefulset.yaml")["spec"]["replicas"]
    shares = [select(settings.gateways, Shard(i, replicas)) for i in range(replicas)]
    assert sorted(gw.host for share in shares for gw in share) == ["10.8.0.11", "10.8.0.12"]
