"""A KYC reviewer works the review queue from `walletsec` (list, show, decide) against a real
kyc and auth; a security officer verifies kyc's audit chain, which holds the read and the
decision."""

from __future__ import annotations

from pathlib import Path

from tests.api.kyc.harness import JPEG, LEGAL_NAME, RESIDENT_ID, KycTestApp
from tests.api.walletsec.cli_helpers import Walletsec, operator_token
from wallet.kyc.v1 import types_pb2
from walletcore.identity import OperatorRole
from walletsec.connection import ExitCode


async def test_a_reviewer_lists_shows_and_approves_a_case_and_the_audit_chain_holds_it(
    kyc_app: KycTestApp, tmp_path: Path
) -> None:
    user = await kyc_app.auth.register()
    submitted = await kyc_app.submit(user.metadata)
    reviewer = Walletsec(
        {
            "WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.KYC_REVIEWER, "reviewer-3"),
            "WALLETSEC_KYC_ADMIN": f"127.0.0.1:{kyc_app.ports['admin']}",
        }
    )
    officer = reviewer.as_role(OperatorRole.SECURITY_OFFICER)

    queue = await reviewer("--json", "kyc", "list")
    case_id = queue.json()[0]["case_id"]
    shown = await reviewer("kyc", "show", case_id, "--save-images", str(tmp_path))
    no_reason = await reviewer("kyc", "decide", case_id, "--decision", "reject-final")
    approved = await reviewer("--json", "kyc", "decide", case_id, "--decision", "approve")
    twice = await reviewer("kyc", "decide", case_id, "--decision", "approve")
    empty = await reviewer("--json", "kyc", "list")
    chain = await officer("--json", "audit", "verify", "kyc")
    as_reviewer = await reviewer("audit", "verify", "kyc")

    assert queue.exit_code == 0, queue.stderr
    assert [item["account_id"] for item in queue.json()] == [user.account_id]
    assert case_id == submitted.verification_id
    assert shown.exit_code == 0, shown.stderr
    assert LEGAL_NAME in shown.stdout
    assert RESIDENT_ID in shown.stdout
    assert (tmp_path / f"{case_id}-front.jpg").read_bytes() == JPEG
    assert no_reason.exit_code == ExitCode.BAD_INPUT
    assert no_reason.stderr == (
        "walletsec: error: kyc refused the request (INVALID_ARGUMENT): "
        "reason_code: is required for a rejection\n"
    )
    assert approved.exit_code == 0, approved.stderr
    assert approved.json()["state"] == types_pb2.VerificationState.Name(
        types_pb2.VERIFICATION_STATE_APPROVED
    )
    assert twice.exit_code == ExitCode.FAILED
    assert "CASE_ALREADY_DECIDED" in twice.stderr
    assert empty.json() == []
    assert chain.exit_code == 0, chain.stderr
    assert chain.json()["intact"] is True
    assert int(chain.json()["entries_checked"]) >= 2
    assert as_reviewer.exit_code == ExitCode.DENIED
