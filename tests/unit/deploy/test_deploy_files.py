"""The deployment files are checked here because no Docker engine or cluster is at hand.

They are contracts too: a compose file that does not parse, or a manifest that inlines a
secret or lacks a probe, fails here rather than on an operator's machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.auth.settings import AuthSettings
from services.binding.settings import BindingSettings
from services.kyc.settings import KycSettings
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import SigningKeyRing

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


SETTINGS = {"auth": AuthSettings, "kyc": KycSettings, "binding": BindingSettings}
_KEY_SPEC = format_key_spec([generate_key("k1")])
_IDP_JWKS = json.dumps([SigningKeyRing.development("deploy-test-idp").public_jwks()[0]])


def _stand_in_secret(service: str, key: str) -> str:
    """What the out-of-band secret would hold, well-formed, for `key`."""
    if key.endswith("database-url"):
        return f"postgresql+asyncpg://{service}:s3cret@db:5432/{service}-{key}"
    if key == "identity-keys-jwks":
        return _IDP_JWKS
    if key.endswith("-keys") or key.endswith("-key"):
        return _KEY_SPEC
    return "s3cret"


def _deployment(service: str) -> dict[str, Any]:
    (found,) = [d for d in _of_kind("Deployment") if d["metadata"]["name"] == f"wallet-{service}"]
    return found


def _environment(service: str) -> dict[str, str]:
    """The service container's environment as the pod would see it."""
    (container,) = _deployment(service)["spec"]["template"]["spec"]["containers"]
    environment: dict[str, str] = {}
    for env in container["env"]:
        if "value" in env:
            environment[env["name"]] = env["value"]
        else:
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["name"] == f"wallet-{service}-secrets", env["name"]
            environment[env["name"]] = _stand_in_secret(service, ref["key"])
    return environment


def test_every_service_has_a_manifest() -> None:
    assert {d["metadata"]["name"] for d in _of_kind("Deployment")} == {
        f"wallet-{service}" for service in SETTINGS
    }


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_deployment_environment_passes_the_production_checks(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"{service.upper()}_"
    for name in list(os.environ):
        if name.startswith(prefix):
            monkeypatch.delenv(name)
    environment = _environment(service)
    for name, value in environment.items():
        assert name.startswith(prefix), name
        monkeypatch.setenv(name, value)

    settings = SETTINGS[service]()

    assert settings.profile == "production"
    assert settings.migrate_on_start is False  # the init containers migrate
    ports = {p["name"]: p["containerPort"] for p in _container_ports(service)}
    assert ports == {
        "grpc-public": settings.public_port,
        "grpc-admin": settings.admin_port,
        "grpc-internal": settings.internal_port,
        "metrics": settings.metrics_port,
    }


def _container_ports(service: str) -> list[dict[str, Any]]:
    (container,) = _deployment(service)["spec"]["template"]["spec"]["containers"]
    return list(container["ports"])


def _service_port(service: str, name: str) -> int:
    (found,) = [d for d in _of_kind("Service") if d["metadata"]["name"] == f"wallet-{service}"]
    (port,) = [p["port"] for p in found["spec"]["ports"] if p["name"] == name]
    return int(port)


def _admitted_on(service: str, port: int) -> set[str]:
    """The pods (by name label) the service's network policy lets in on `port`."""
    (policy,) = [
        d for d in _of_kind("NetworkPolicy") if d["metadata"]["name"] == f"wallet-{service}"
    ]
    admitted: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        if any(p["port"] == port for p in rule["ports"]):
            for source in rule["from"]:
                labels = source.get("podSelector", {}).get("matchLabels", {})
                admitted.update(labels.values())
    return admitted


def _egress_to(service: str, peer: str) -> set[int]:
    (policy,) = [
        d for d in _of_kind("NetworkPolicy") if d["metadata"]["name"] == f"wallet-{service}"
    ]
    ports: set[int] = set()
    for rule in policy["spec"]["egress"]:
        for target in rule["to"]:
            if (
                target.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                == f"wallet-{peer}"
            ):
                ports.update(p["port"] for p in rule["ports"])
    return ports


@pytest.mark.parametrize(
    ("caller", "peer"), [("kyc", "auth"), ("binding", "auth"), ("binding", "kyc")]
)
def test_each_caller_reaches_its_peers_internal_port_and_is_let_in(caller: str, peer: str) -> None:
    address = _environment(caller)[f"{caller.upper()}_{peer.upper()}_INTERNAL_ADDRESS"]
    internal = _service_port(peer, "grpc-internal")

    assert address == f"wallet-{peer}.wallet.svc:{internal}"
    assert f"wallet-{caller}" in _admitted_on(peer, internal)
    assert _egress_to(caller, peer) == {internal}


def test_binding_migrates_its_database_and_the_card_vaults_before_it_starts() -> None:
    init = _deployment("binding")["spec"]["template"]["spec"]["initContainers"]
    commands = {tuple(container["command"][3:5]) for container in init}
    environment = _environment("binding")

    assert commands == {
        ("upgrade", "binding"),
        ("upgrade", "services/binding/adapters/vault_migrations"),
    }
    assert (ROOT / "services" / "binding" / "adapters" / "vault_migrations").is_dir()
    assert environment["BINDING_VAULT_DATABASE_URL"] != environment["BINDING_DATABASE_URL"]
