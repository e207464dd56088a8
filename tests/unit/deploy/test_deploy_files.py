"""The deployment files are checked here because no Docker engine or cluster is at hand.

They are contracts too: a compose file that does not parse, or a manifest that inlines a
secret or lacks a probe, fails here rather than on an operator's machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _manifests() if doc["kind"] == kind]


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)


def test_every_compose_service_built_from_the_repo_exists_as_a_runnable_module() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = {
        name: spec["build"]["args"]["SERVICE"]
        for name, spec in compose["services"].items()
        if "build" in spec
    }
    assert built, "compose builds no wallet service"
    for service in built.values():
        assert (ROOT / "services" / service / "__main__.py").is_file(), service


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("doc", _manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes_in_strict_mode(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_each_deployment_has_grpc_probes_and_its_own_autoscaler_budget_and_policy() -> None:
    names = {d["metadata"]["name"] for d in _of_kind("Deployment")}
    assert names
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        assert {d["metadata"]["name"] for d in _of_kind(kind)} >= names, kind
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert "grpc" in container[probe], (deployment["metadata"]["name"], probe)


def test_secrets_are_referenced_never_inlined() -> None:
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container["env"]:
                if any(word in env["name"] for word in ("KEYS", "DATABASE_URL", "PASSWORD")):
                    assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
                    assert "value" not in env, env["name"]
                if env["name"].endswith("_PROFILE"):
                    assert env["value"] == "production"
