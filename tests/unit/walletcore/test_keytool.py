"""The keytool's public JWKS: what AUTH_IDENTITY_KEYS_JWKS needs for an identity key spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.auth.settings import AuthSettings
from walletcore.identity import CallerKind
from walletcore.keys import format_key_spec, generate_key
from walletcore.keytool import main, run
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    OperatorTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
)

ROOT = Path(__file__).resolve().parents[3]
ENV = "TEST_IDP_SIGNING_KEYS"


@pytest.fixture
def identity_spec(monkeypatch: pytest.MonkeyPatch) -> str:
    spec = format_key_spec([generate_key("idp-2"), generate_key("idp-1")])
    monkeypatch.setenv(ENV, spec)
    return spec


async def test_the_printed_jwks_verifies_the_tokens_the_same_spec_signs(
    identity_spec: str,
) -> None:
    jwks = json.loads(run(["public-jwks", "--signing-keys-env", ENV]))
    mint = ["operator-token", "--operator-id", "op-1", "--role", "kyc_reviewer"]
    token = run([*mint, "--signing-keys-env", ENV])

    verifier = OperatorTokenVerifier(StaticKeySet(jwks), DEVELOPMENT_IDENTITY_ISSUER)
    caller = await verifier.verify(token)

    assert caller.kind is CallerKind.OPERATOR
    assert [key["kid"] for key in jwks] == ["idp-2", "idp-1"]
    assert AuthSettings(identity_keys_jwks=jwks).identity_keys_jwks == jwks


def test_the_jwks_holds_public_keys_only(identity_spec: str) -> None:
    printed = run(["public-jwks", "--signing-keys-env", ENV])

    assert all(set(key) == {"kty", "crv", "x", "kid", "alg", "use"} for key in json.loads(printed))
    for entry in identity_spec.split(","):
        assert entry.split(":", 1)[1] not in printed


def test_without_a_spec_it_prints_the_development_identity_keys() -> None:
    printed = json.loads(run(["public-jwks"]))

    assert printed == SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()


def test_an_unset_or_malformed_spec_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["public-jwks", "--signing-keys-env", "TEST_UNSET_SPEC"]) == 2
    monkeypatch.setenv(ENV, "idp-1:not-a-key-at-all")
    assert main(["public-jwks", "--signing-keys-env", ENV]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "TEST_UNSET_SPEC" in captured.err
    assert "not-a-key-at-all" not in captured.err


def test_the_command_runs_as_the_readme_writes_it(identity_spec: str) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "walletcore.keytool", "public-jwks", "--signing-keys-env", ENV],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert AuthSettings(identity_keys_jwks=json.loads(printed)).identity_keys_jwks
