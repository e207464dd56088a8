"""A refund operator works the refund queue from `walletsec` (list, show, approve, reject,
retry, reroute) against a real refund and auth; one-line errors and exit codes for a bad
reason, an unknown refund, a second decision and the wrong role."""

from __future__ import annotations

from tests.api.auth.recovery_helpers import Holder
from tests.api.refund.conftest import CARD, OTHER_CARD, RefundTestApp
from tests.api.walletsec.cli_helpers import Walletsec, operator_token
from walletcore.identity import OperatorRole
from walletsec.connection import ExitCode


def operator_cli(app: RefundTestApp) -> Walletsec:
    return Walletsec(
        {
            "WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.REFUND_OPERATOR, "ops-4"),
            "WALLETSEC_REFUND_ADMIN": f"127.0.0.1:{app.ports['admin']}",
        }
    )


async def waiting_refunds(app: RefundTestApp, holder: Holder, count: int) -> list[str]:
    """`count` refunds of 10,000 that wait for an operator (auto-approval ends at 5,000)."""
    payment = await app.capture(holder)
    return [(await app.request(holder, payment.payment_id, 10_000)).refund_id for _ in range(count)]


async def test_an_operator_lists_shows_approves_and_rejects(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    first, second = await waiting_refunds(refund_app, holder, 2)
    cli = operator_cli(refund_app)

    queue = await cli("--json", "refund", "list")
    table = await cli("refund", "list", COLUMNS="200")  # wide enough for whole ids
    shown = await cli("refund", "show", first, COLUMNS="200")
    bad_reason = await cli("refund", "reject", first, "--reason", "because")
    rejected = await cli("--json", "refund", "reject", first, "--reason", "not-eligible")
    approved = await cli("--json", "refund", "approve", second, "--note", "receipt checked")
    again = await cli("refund", "approve", second)
    unknown = await cli("refund", "show", "0" * 32)
    as_officer = await cli.as_role(OperatorRole.SECURITY_OFFICER)("refund", "list")
    after = await cli("--json", "refund", "list")

    assert queue.exit_code == 0, queue.stderr
    assert [(i["refund"]["refund_id"], i["account_id"]) for i in queue.json()] == [
        (first, holder.account_id),
        (second, holder.account_id),
    ]
    assert "Refund queue" in table.stdout
    assert first in table.stdout
    assert shown.exit_code == 0, shown.stderr
    assert holder.account_id in shown.stdout
    assert "10000 CNY" in shown.stdout
    assert bad_reason.exit_code == ExitCode.BAD_INPUT
    assert bad_reason.stderr.startswith("walletsec: error: --reason must be one of: not-eligible")
    assert rejected.exit_code == 0, rejected.stderr
    assert rejected.json()["state"] == "REFUND_STATE_REJECTED"
    assert rejected.json()["reject_reason"] == "REFUND_REJECT_REASON_NOT_ELIGIBLE"
    assert approved.json()["state"] == "REFUND_STATE_APPROVED"
    assert again.exit_code == ExitCode.FAILED
    assert len(again.stderr.splitlines()) == 1
    assert unknown.exit_code == ExitCode.NOT_FOUND, unknown.stderr
    assert as_officer.exit_code == ExitCode.DENIED
    assert after.json() == []


async def test_a_refund_to_a_closed_card_is_retried_then_rerouted(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refund_id = (await refund_app.request(holder, payment.payment_id, 1_000)).refund_id
    refund_app.holds.instruments[f"{CARD}{holder.account_id}"] = (holder.account_id, False)
    await refund_app.pay_out()
    cli = operator_cli(refund_app)

    retried = await cli("refund", "retry", refund_id)
    rerouted = await cli(
        "--json", "refund", "reroute", refund_id, "--instrument", f"{OTHER_CARD}{holder.account_id}"
    )
    await refund_app.pay_out()
    shown = await cli("--json", "refund", "show", refund_id)

    assert retried.exit_code == ExitCode.FAILED
    assert "INSTRUMENT_UNAVAILABLE" in retried.stderr
    assert rerouted.exit_code == 0, rerouted.stderr
    assert rerouted.json()["state"] == "REFUND_STATE_PROCESSING"
    assert shown.json()["refund"]["state"] == "REFUND_STATE_SUCCEEDED"
    assert shown.json()["refund"]["instrument_id"] == f"{OTHER_CARD}{holder.account_id}"
