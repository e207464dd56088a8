"""walletsec speaks TLS to an admin port behind a TLS-terminating proxy (as behind an ingress),
checks the server against WALLETSEC_CA_FILE, presents a client certificate for mutual TLS, and
never sends the operator token in plaintext to an address off this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.auth.harness import AuthTestApp
from tests.api.walletsec.cli_helpers import Walletsec, one_line_error, operator_token
from tests.support.tls import TlsProxy, issue
from walletcore.identity import OperatorRole
from walletsec.connection import ExitCode

# TLS sits in front of the service: one storage backend shows it.
TLS_BACKEND = pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)


@TLS_BACKEND
async def test_an_officer_reads_an_account_over_tls_and_a_server_the_ca_did_not_sign_is_refused(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: Path
) -> None:
    user = await auth_app.register()
    trusted = issue(tmp_path / "trusted")
    stranger = issue(tmp_path / "stranger", ca_name="another CA")
    async with TlsProxy(trusted, f"127.0.0.1:{auth_app.ports['admin']}") as proxy:
        address = f"localhost:{proxy.port}"
        shown = await cli(
            "show",
            user.account_id,
            WALLETSEC_AUTH_ADMIN=address,
            WALLETSEC_CA_FILE=str(trusted.ca_file),
        )
        wrong_ca = await cli(
            "show",
            user.account_id,
            WALLETSEC_AUTH_ADMIN=address,
            WALLETSEC_CA_FILE=str(stranger.ca_file),
        )
        plaintext_to_tls = await cli("show", user.account_id, WALLETSEC_AUTH_ADMIN=address)

    assert shown.exit_code == 0, shown.stderr
    assert user.account_id in shown.stdout
    assert "active" in shown.stdout
    assert wrong_ca.exit_code == ExitCode.UNREACHABLE
    assert "WALLETSEC_CA_FILE signs its certificate" in one_line_error(wrong_ca.stderr)
    assert plaintext_to_tls.exit_code == ExitCode.UNREACHABLE


@TLS_BACKEND
async def test_mutual_tls_admits_only_a_client_certificate_the_ca_signed(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: Path
) -> None:
    user = await auth_app.register()
    trusted = issue(tmp_path / "trusted")
    stranger = issue(tmp_path / "stranger", ca_name="another CA")
    target = f"127.0.0.1:{auth_app.ports['admin']}"
    async with TlsProxy(trusted, target, require_client_certificate=True) as proxy:
        tls = {
            "WALLETSEC_AUTH_ADMIN": f"localhost:{proxy.port}",
            "WALLETSEC_CA_FILE": str(trusted.ca_file),
        }
        with_certificate = await cli(
            "show",
            user.account_id,
            **tls,
            WALLETSEC_CERT_FILE=str(trusted.client_cert_file),
            WALLETSEC_KEY_FILE=str(trusted.client_key_file),
        )
        foreign_certificate = await cli(
            "show",
            user.account_id,
            **tls,
            WALLETSEC_CERT_FILE=str(stranger.client_cert_file),
            WALLETSEC_KEY_FILE=str(stranger.client_key_file),
        )
        without_certificate = await cli("show", user.account_id, **tls)

    assert with_certificate.exit_code == 0, with_certificate.stderr
    assert user.account_id in with_certificate.stdout
    assert foreign_certificate.exit_code == ExitCode.UNREACHABLE
    assert without_certificate.exit_code == ExitCode.UNREACHABLE


async def test_the_token_never_goes_in_plaintext_off_this_machine_and_bad_tls_files_are_named(
    tmp_path: Path,
) -> None:
    cli = Walletsec({"WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.SECURITY_OFFICER)})
    trusted = issue(tmp_path / "trusted")
    remote = await cli("show", "acct-1", WALLETSEC_AUTH_ADMIN="auth-admin.wallet.example:443")
    missing_ca = await cli(
        "show",
        "acct-1",
        WALLETSEC_CA_FILE=str(tmp_path / "absent.pem"),
    )
    half_pair = await cli(
        "show",
        "acct-1",
        WALLETSEC_CA_FILE=str(trusted.ca_file),
        WALLETSEC_CERT_FILE=str(trusted.client_cert_file),
    )

    assert remote.exit_code == ExitCode.BAD_INPUT
    assert "is not a loopback address: set WALLETSEC_CA_FILE" in one_line_error(remote.stderr)
    assert missing_ca.exit_code == ExitCode.BAD_INPUT
    assert "cannot read the TLS file" in one_line_error(missing_ca.stderr)
    assert "absent.pem" in one_line_error(missing_ca.stderr)
    assert half_pair.exit_code == ExitCode.BAD_INPUT
    assert "go together" in one_line_error(half_pair.stderr)
