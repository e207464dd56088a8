"""The deployment files are checked here because no Docker engine or cluster is at hand.

They are contracts too: a compose file that does not parse, or a manifest that inlines a
secret or lacks a probe, fails here rather than on an operator's machine.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.auth.settings import AuthSettings
from services.binding.settings import BindingSettings
from services.kyc.settings import KycSettings
from services.refund.settings import RefundSettings
from tests.support import kustomize
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import SigningKeyRing

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
SERVICES = ("auth", "kyc", "binding", "refund")


def _kustomize_command(directory: Path) -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(directory)]
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(directory)]
    return None


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kustomize build` (kubectl's built-in kustomize or the standalone binary), else the
    Python render of tests/support/kustomize.py."""
    command = _kustomize_command(directory)
    if command is None:
        return kustomize.render(directory)
    rendered = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@functools.cache
def _rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    return tuple(_kustomize(directory))


def _manifests() -> list[dict[str, Any]]:
    """The production overlay, rendered."""
    return list(_rendered(PRODUCTION))


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


def test_kustomizations_list_every_manifest() -> None:
    for directory in (BASE, PRODUCTION):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"]) | {
            patch["path"] for patch in kustomization.get("patches", []) if "path" in patch
        }
        present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert listed - {"../../base"} == present, directory


@pytest.mark.parametrize("overlay", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_rendered_manifest_is_valid_kubernetes_in_strict_mode(overlay: Path) -> None:
    docs = _rendered(overlay)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


@pytest.mark.parametrize("overlay", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_python_render_gives_what_kustomize_gives(overlay: Path) -> None:
    if _kustomize_command(overlay) is None:
        pytest.skip("no kustomize here to compare the Python render with")

    def key(doc: dict[str, Any]) -> str:
        return f"{doc['kind']}/{doc['metadata']['name']}"

    python = sorted(kustomize.render(overlay), key=key)
    tool = sorted(_kustomize(overlay), key=key)
    assert [key(d) for d in python] == [key(d) for d in tool]
    assert python == tool


def test_the_kubernetes_validate_command_accepts_the_rendered_overlay(tmp_path: Path) -> None:
    rendered = tmp_path / "production.yaml"
    rendered.write_text(yaml.safe_dump_all(_manifests()))
    tool = Path(sys.executable).parent / "kubernetes-validate"
    command = [str(tool)] if tool.exists() else ["kubernetes-validate"]
    result = subprocess.run(
        [*command, "--strict", "-k", "1.30", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_runs_no_simulated_gateway_and_the_base_does() -> None:
    def names(docs: tuple[dict[str, Any], ...]) -> set[str]:
        return {d["metadata"]["name"] for d in docs}

    assert "wallet-gateway-sim" in names(_rendered(BASE))
    assert "wallet-gateway-sim" not in names(_rendered(PRODUCTION))
    (config,) = [
        d for d in _of_kind("ConfigMap") if d["metadata"]["name"] == "wallet-refund-gateway"
    ]
    assert config["data"]["url"].startswith("https://")


def test_each_deployment_has_grpc_probes_and_its_own_autoscaler_budget_and_policy() -> None:
    names = {d["metadata"]["name"] for d in _of_kind("Deployment")}
    assert names == {f"wallet-{service}" for service in SERVICES}
    assert names
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        assert {d["metadata"]["name"] for d in _of_kind(kind)} >= names, kind
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert "grpc" in container[probe], (deployment["metadata"]["name"], probe)
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]
        assert deployment["spec"]["replicas"] == 3


def test_secrets_are_referenced_never_inlined() -> None:
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container["env"]:
                if any(word in env["name"] for word in ("KEYS", "DATABASE_URL", "PASSWORD")):
                    assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
                    assert "value" not in env, env["name"]
                if env["name"].endswith("_PROFILE"):
                    assert env["value"] == "production"


# Any: the four settings classes share no base that declares every field read here.
SETTINGS: dict[str, Any] = {
    "auth": AuthSettings,
    "kyc": KycSettings,
    "binding": BindingSettings,
    "refund": RefundSettings,
}
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
        elif "configMapKeyRef" in env["valueFrom"]:
            ref = env["valueFrom"]["configMapKeyRef"]
            (config,) = [d for d in _of_kind("ConfigMap") if d["metadata"]["name"] == ref["name"]]
            environment[env["name"]] = config["data"][ref["key"]]
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
    assert settings.migrate_on_start is False  # the migration Jobs migrate
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


# Who calls whom (SPEC section 2), the graph the network policies must draw exactly.
CALLS = {"auth": set(), "kyc": {"auth"}, "binding": {"auth", "kyc"}, "refund": {"auth", "binding"}}


@pytest.mark.parametrize(
    ("caller", "peer"), [(caller, peer) for caller, peers in CALLS.items() for peer in peers]
)
def test_each_caller_reaches_its_peers_internal_port_and_is_let_in(caller: str, peer: str) -> None:
    address = _environment(caller)[f"{caller.upper()}_{peer.upper()}_INTERNAL_ADDRESS"]
    internal = _service_port(peer, "grpc-internal")

    assert address == f"wallet-{peer}.wallet.svc:{internal}"
    assert f"wallet-{caller}" in _admitted_on(peer, internal)
    assert _egress_to(caller, peer) == {internal}


def test_the_network_policy_graph_is_exactly_who_calls_whom() -> None:
    egress = {
        caller: {peer for peer in SERVICES if _egress_to(caller, peer)} for caller in SERVICES
    }
    ingress = {
        peer: {
            name.removeprefix("wallet-")
            for port in {p["containerPort"] for p in _container_ports(peer)}
            for name in _admitted_on(peer, port)
        }
        for peer in SERVICES
    }
    assert egress == CALLS
    assert ingress == {
        peer: {caller for caller, peers in CALLS.items() if peer in peers} for peer in SERVICES
    }


def test_refund_reaches_the_payout_gateway_and_only_refund_does() -> None:
    base = [d for d in _rendered(BASE) if d["kind"] == "NetworkPolicy"]
    (sim,) = [d for d in base if d["metadata"]["name"] == "wallet-gateway-sim"]
    (rule,) = sim["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "wallet-refund"}}}
    ]
    assert sim["spec"]["egress"] == []
    assert _egress_to("refund", "gateway-sim") == {50090}
    for service in ("auth", "kyc", "binding"):
        assert not _egress_to(service, "gateway-sim"), service


def _jobs() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _of_kind("Job")}


def test_a_migration_job_per_database_and_no_migration_in_the_pods() -> None:
    jobs = _jobs()
    commands = {}
    for name, job in jobs.items():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert container["command"][:4] == ["python", "-m", "walletcore.migrations", "upgrade"]
        (env,) = container["env"]
        assert "secretKeyRef" in env["valueFrom"], name
        commands[name] = (container["command"][4], env["valueFrom"]["secretKeyRef"]["key"])
    assert commands == {
        "wallet-auth-migrate": ("auth", "database-url"),
        "wallet-kyc-migrate": ("kyc", "database-url"),
        "wallet-binding-migrate": ("binding", "database-url"),
        "wallet-binding-migrate-vault": (
            "services/binding/adapters/vault_migrations",
            "vault-database-url",
        ),
        "wallet-refund-migrate": ("refund", "database-url"),
    }
    assert (ROOT / "services" / "binding" / "adapters" / "vault_migrations").is_dir()
    for deployment in _of_kind("Deployment"):
        assert "initContainers" not in deployment["spec"]["template"]["spec"]
    environment = _environment("binding")
    assert environment["BINDING_VAULT_DATABASE_URL"] != environment["BINDING_DATABASE_URL"]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_migrates_each_database_before_its_service_starts() -> None:
    services = _compose()["services"]
    for service in SERVICES:
        needs = services[service]["depends_on"]
        migrations = [name for name in needs if name.startswith(f"migrate-{service}")]
        assert migrations, service
        for name in migrations:
            assert needs[name]["condition"] == "service_completed_successfully"
            assert services[name]["entrypoint"][:4] == [
                "python",
                "-m",
                "walletcore.migrations",
                "upgrade",
            ]
        for peer in CALLS[service]:
            assert needs[peer]["condition"] == "service_healthy", (service, peer)
        assert services[service]["healthcheck"]["test"][-1] == "walletcore.grpc.healthcheck"
    assert services["refund"]["depends_on"]["gateway-sim"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_environment_is_what_the_service_accepts(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = _compose()["services"]
    environment = compose[service]["environment"]
    prefix = f"{service.upper()}_"
    for name in list(os.environ):
        if name.startswith(prefix):
            monkeypatch.delenv(name)
    settings_type = SETTINGS[service]
    for name, value in environment.items():
        assert name.startswith(prefix), name
        field = name.removeprefix(prefix).split("__")[0].lower()
        assert field in settings_type.model_fields, name
        monkeypatch.setenv(name, value)

    settings = settings_type()

    assert settings.migrate_on_start is False
    assert settings.rate_limiter == "redis"
    assert settings.database_url.endswith(f"@postgres:5432/{service}")
    published = {int(port.split(":")[-1]) for port in compose[service]["ports"]}
    assert published == {settings.public_port, settings.admin_port, settings.metrics_port}
    migrated = {
        compose[name]["environment"]["DATABASE_URL"]
        for name in compose[service]["depends_on"]
        if name.startswith("migrate-")
    }
    assert settings.database_url in migrated
    for callee in CALLS[service]:
        address = getattr(settings, f"{callee}_internal_address")
        assert (
            address
            == f"{callee}:{compose[callee]['environment'][f'{callee.upper()}_INTERNAL_PORT']}"
        )


def test_compose_sends_auths_mail_and_sms_to_the_catchers() -> None:
    services = _compose()["services"]
    environment = services["auth"]["environment"]
    assert environment["AUTH_NOTIFIER__SMTP_HOST"] == "mailpit"
    assert environment["AUTH_NOTIFIER__SMS_WEBHOOK_URL"].startswith("http://sms-sink:8080/")
    assert services["refund"]["environment"]["REFUND_GATEWAY_URL"] == (
        f"http://gateway-sim:{services['gateway-sim']['environment']['REFUND_SIM_PORT']}"
    )
    databases = (ROOT / "deploy" / "postgres" / "init-databases.sql").read_text()
    for name, spec in services.items():
        if name.startswith("migrate-"):
            database = spec["environment"]["DATABASE_URL"].rsplit("/", 1)[1]
            assert f"CREATE DATABASE {database};" in databases
