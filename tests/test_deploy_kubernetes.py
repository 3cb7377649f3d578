"""deploy/kubernetes: manifests checked against the Kubernetes API schemas, offline.

No cluster and no kustomize binary here: every manifest is validated with
kubernetes-validate (it ships the OpenAPI schemas; strict mode rejects unknown
fields), the configMapGenerator and the cluster overlay's patch are applied by
hand the way kustomize would, and the wiring that a schema cannot see is
checked explicitly (selectors, port names, Secret keys, the collector config
copy not drifting from collector-config/otelcol-contrib.yaml).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from support.deploy import CONTRIB_CONFIG, KUBERNETES, load_yaml_documents

#: oldest and a recent Kubernetes minor we claim to support
K8S_VERSIONS = ("1.30.0", "1.34.0")
PINNED = re.compile(r"^[\w.\-/]+:(?!latest$)[\w.\-]*\d[\w.\-]*$")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)")
CONFIG_COPY = KUBERNETES / "otelcol" / "otelcol-contrib.yaml"
EMBEDDED = KUBERNETES / "embedded-collector"


def _kustomization(path: Path = KUBERNETES) -> dict[str, Any]:
    (doc,) = load_yaml_documents(path / "kustomization.yaml")
    return doc


def _resources() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        docs += load_yaml_documents(KUBERNETES / name)
    return docs


def _generated_configmaps(base: Path = KUBERNETES) -> list[dict[str, Any]]:
    """What kustomize's configMapGenerator produces (before the hash suffix)."""
    out = []
    for gen in _kustomization(base).get("configMapGenerator", []):
        data = {}
        for entry in gen["files"]:
            key, _, rel = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
            data[key] = (base / rel).read_text(encoding="utf-8")
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": gen["name"]},
                "data": data,
            }
        )
    return out


def _by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _resources() if d["kind"] == kind and d["metadata"]["name"] == name)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def _all_manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = [
        (str(name), d)
        for name in _kustomization()["resources"]
        for d in load_yaml_documents(KUBERNETES / name)
    ]
    docs += [
        ("secret.example.yaml", d) for d in load_yaml_documents(KUBERNETES / "secret.example.yaml")
    ]
    docs += [
        (f"{EMBEDDED.name}/{name}", d)
        for name in _kustomization(EMBEDDED)["resources"]
        for d in load_yaml_documents(EMBEDDED / name)
    ]
    docs += [(f"{EMBEDDED.name}/configMapGenerator", d) for d in _generated_configmaps(EMBEDDED)]
    return docs


def test_kubernetes_validate_works_offline_with_bundled_schemas() -> None:
    # a wrong field must be rejected, or the validation below proves nothing
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "not-a-number"}], "selectr": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_against_the_schema(version: str) -> None:
    if not CONFIG_COPY.exists():
        pytest.fail(f"{CONFIG_COPY} is missing: run deploy/kubernetes/sync-collector-config.sh")
    docs = _all_manifests() + [("configMapGenerator", d) for d in _generated_configmaps()]
    docs += [("overlays/cluster", _cluster_overlay_job())]
    kinds = set()
    for where, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        kinds.add(doc["kind"])
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "StatefulSet",
        "NetworkPolicy",
    } <= kinds


def test_kustomization_lists_existing_files_and_not_the_example_secret() -> None:
    kust = _kustomization()
    assert kust["namespace"] == "spanledger"
    for name in kust["resources"]:
        assert (KUBERNETES / name).is_file(), name
    assert "secret.example.yaml" not in kust["resources"]
    overlay = _kustomization(KUBERNETES / "overlays" / "cluster")
    assert overlay["resources"] == ["../.."]


def test_collector_config_copy_does_not_drift() -> None:
    assert CONFIG_COPY.read_bytes() == CONTRIB_CONFIG.read_bytes(), (
        "run deploy/kubernetes/sync-collector-config.sh"
    )
    (cm,) = [c for c in _generated_configmaps() if c["metadata"]["name"] == "otelcol-config"]
    assert cm["data"]["config.yaml"] == CONTRIB_CONFIG.read_text(encoding="utf-8")


def test_collector_deployment_wiring() -> None:
    deploy = _by_kind("Deployment", "otelcol")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    # HPA and PDB act on exactly these pods
    hpa = _by_kind("HorizontalPodAutoscaler", "otelcol")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "otelcol",
    }
    assert (
        hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    )
    pdb = _by_kind("PodDisruptionBudget", "otelcol")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "drains must be possible"
    service = _by_kind("Service", "otelcol")
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = _containers(deploy)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (4317, "otlp-grpc"),
        (4318, "otlp-http"),
    }
    assert ports["otlp-grpc"] == 4317 and ports["otlp-http"] == 4318
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert container["resources"]["requests"]["cpu"], "the HPA needs a CPU request"
    assert PINNED.match(container["image"]) and "contrib" in container["image"]
    # the config comes from the generated ConfigMap, mounted where --config points
    (volume,) = deploy["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == "otelcol-config"
    (mount,) = container["volumeMounts"]
    key = _generated_configmaps()[0]["data"].keys()
    assert container["args"] == [f"--config={mount['mountPath']}/{next(iter(key))}"]
    assert mount["name"] == volume["name"]


def test_secret_references_match_the_example_secret() -> None:
    secrets = {
        d["metadata"]["name"]: set(d["stringData"])
        for d in load_yaml_documents(KUBERNETES / "secret.example.yaml")
    }
    for doc in load_yaml_documents(KUBERNETES / "secret.example.yaml"):
        assert set(doc["stringData"].values()) <= {"spanledger", "REPLACE-ME"}, "placeholders only"
    embedded = [
        d
        for name in _kustomization(EMBEDDED)["resources"]
        for d in load_yaml_documents(EMBEDDED / name)
    ]
    refs = []
    for doc in _resources() + embedded:
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            for c in _containers(doc):
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        refs.append((doc["metadata"]["name"], ref["name"], ref["key"]))
                    else:
                        assert "password" not in env["name"].lower() or "$(" in env.get("value", "")
    assert refs and all(name in secrets and key in secrets[name] for _, name, key in refs)
    assert {name for _, name, _ in refs} == set(secrets)


def test_contrib_config_matches_the_deployment() -> None:
    text = CONTRIB_CONFIG.read_text(encoding="utf-8")
    (container,) = _containers(_by_kind("Deployment", "otelcol"))
    assert set(ENV_REF.findall(text)) <= {e["name"] for e in container["env"]}
    config = yaml.safe_load(text)
    # the probes call the health_check extension on the health port
    health = next(
        c for n, c in config.get("extensions", {}).items() if n.startswith("health_check")
    )
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    assert str(port) in str((health or {}).get("endpoint", "0.0.0.0:13133"))
    assert any(n.startswith("health_check") for n in config["service"].get("extensions", []))


def _cluster_overlay_job() -> dict[str, Any]:
    """The migration Job after overlays/cluster's JSON patch (as kustomize applies it)."""
    job = copy.deepcopy(_by_kind("Job", "spanledger-migrate"))
    (patch,) = _kustomization(KUBERNETES / "overlays" / "cluster")["patches"]
    assert patch["target"] == {"kind": "Job", "name": "spanledger-migrate"}
    for op in yaml.safe_load(patch["patch"]):
        assert op["op"] == "replace"
        *parents, last = [p for p in op["path"].split("/") if p]
        node: Any = job
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert last in node
        node[last] = op["value"]
    return job


def test_migration_job_and_its_cluster_variant() -> None:
    job = _by_kind("Job", "spanledger-migrate")
    (container,) = _containers(job)
    assert container["args"] == ["db", "migrate"]
    assert PINNED.match(container["image"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    url = next(e["value"] for e in container["env"] if e["name"] == "SPANLEDGER_CLICKHOUSE_URL")
    # $(VAR) only expands variables defined earlier in the list
    names = [e["name"] for e in container["env"]]
    for var in re.findall(r"\$\((\w+)\)", url):
        assert names.index(var) < names.index("SPANLEDGER_CLICKHOUSE_URL")
    (patched,) = _containers(_cluster_overlay_job())
    assert patched["args"] == ["db", "migrate", "--cluster", "spanledger"]


def test_embedded_collector_alternative() -> None:
    from spanledger.collector.config import load_config

    docs = {
        d["kind"]: d
        for name in _kustomization(EMBEDDED)["resources"]
        for d in load_yaml_documents(EMBEDDED / name)
    }
    sts, service = docs["StatefulSet"], docs["Service"]
    assert sts["spec"]["replicas"] == 1, "an embedded store has exactly one owner"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = _containers(sts)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports.keys()
    # the config file is the generated ConfigMap, and the collector accepts it
    (cm,) = _generated_configmaps(EMBEDDED)
    config_volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == cm["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config_volume["name"])
    (key,) = cm["data"]
    assert container["args"] == ["collector", "--config", f"{mount['mountPath']}/{key}"]
    cfg = load_config(EMBEDDED / key)
    assert (cfg.grpc.host, cfg.grpc.port) == ("0.0.0.0", ports["otlp-grpc"])
    assert (cfg.http.host, cfg.http.port) == ("0.0.0.0", ports["otlp-http"])
    assert cfg.sql_http.enabled and cfg.sql_http.port == ports["sql-http"]
    # the bearer token is read from the environment, which a Secret fills
    env = {e["name"]: e for e in container["env"]}
    assert cfg.bearer_token is None and "bearer_token_env" in (EMBEDDED / key).read_text()
    assert env["SPANLEDGER_COLLECTOR_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"
    assert env["SPANLEDGER_CLICKHOUSE_URL"]["value"].startswith("chdb:///var/lib/spanledger/")
    # the unauthenticated SQL port is fenced by the NetworkPolicy, OTLP is not
    policy = docs["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    sql_rules = [
        r for r in policy["spec"]["ingress"] if {"port": 8123, "protocol": "TCP"} in r["ports"]
    ]
    (sql_rule,) = sql_rules
    assert all("podSelector" in peer for peer in sql_rule["from"])
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert cfg.spool.dir is not None and cfg.spool.dir.startswith(data_mount["mountPath"])


def test_same_collector_image_as_compose() -> None:
    """One contrib version is tested against the config, in compose and on Kubernetes."""
    (compose,) = load_yaml_documents(KUBERNETES.parent / "compose" / "compose.yaml")
    (container,) = _containers(_by_kind("Deployment", "otelcol"))
    assert container["image"] == compose["services"]["otelcol"]["image"]
