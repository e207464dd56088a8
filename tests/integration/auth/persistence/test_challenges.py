"""Sent-code challenges, step-ups and pending contacts on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain.contacts import Email, Phone
from services.auth.domain.events import Actor
from services.auth.domain.ledger import CodeFailureLedger
from services.auth.domain.otp import OtpChallenge, OtpChannel, OtpState
from services.auth.domain.pending import PendingContact, PendingContactPurpose
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.stepup import StepUpChallenge, StepUpPurpose
from tests.integration.auth.persistence.builders import (
    SHANGHAI,
    START,
    NewUnitOfWork,
    make_account,
    store,
)
from walletcore.crypto import SecretHasher


@pytest.fixture(autouse=True)
async def account(new_uow: NewUnitOfWork) -> None:
    await store(new_uow, make_account("acc-1"))


def issue(hasher: SecretHasher, *, account_id: str | None, code: str = "123456") -> OtpChallenge:
    return OtpChallenge.issue(
        id="otp-1",
        account_id=account_id,
        purpose=ChallengePurpose.REGISTRATION if account_id is None else ChallengePurpose.STEP_UP,
        channel=OtpChannel.EMAIL,
        destination_ref="kid:" + "ab" * 32,
        code=code,
        hasher=hasher,
        now=START.astimezone(SHANGHAI),
    )


@pytest.mark.parametrize("account_id", [None, "acc-1"])
async def test_a_code_challenge_comes_back_and_a_wrong_code_is_saved(
    new_uow: NewUnitOfWork, hasher: SecretHasher, account_id: str | None
) -> None:
    challenge = issue(hasher, account_id=account_id)
    async with new_uow() as uow:
        await uow.otp_challenges.add(challenge)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.otp_challenges.get("otp-1", for_update=True)
        assert loaded == challenge
        assert loaded is not None
        ledger = CodeFailureLedger(loaded.ledger_subject)
        outcome = loaded.check(
            "654321", purpose=loaded.purpose, hasher=hasher, ledger=ledger, now=START
        )
        assert not outcome.accepted
        await uow.otp_challenges.save(loaded)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.otp_challenges.get("otp-1") == loaded
    assert loaded.failed_attempts == 1


async def test_a_used_code_challenge_is_saved_as_used(
    new_uow: NewUnitOfWork, hasher: SecretHasher
) -> None:
    challenge = issue(hasher, account_id="acc-1")
    async with new_uow() as uow:
        await uow.otp_challenges.add(challenge)
        challenge.check(
            "123456",
            purpose=ChallengePurpose.STEP_UP,
            hasher=hasher,
            ledger=CodeFailureLedger(challenge.ledger_subject),
            now=START + timedelta(minutes=1),
        ).proof_or_raise()
        await uow.otp_challenges.save(challenge)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.otp_challenges.get("otp-1")

    assert loaded == challenge
    assert loaded is not None
    assert loaded.state is OtpState.USED


@pytest.mark.parametrize(
    ("purpose", "object_id", "method", "otp_challenge_id"),
    [
        (StepUpPurpose.CHANGE_PHONE, "+8613900139000", FactorMethod.SMS, "otp-9"),
        (StepUpPurpose.DISABLE_TOTP, None, FactorMethod.TOTP, None),
    ],
)
async def test_a_step_up_comes_back_and_its_completion_is_saved(
    new_uow: NewUnitOfWork,
    purpose: StepUpPurpose,
    object_id: str | None,
    method: FactorMethod,
    otp_challenge_id: str | None,
) -> None:
    challenge = StepUpChallenge.start(
        id="step-1",
        account_id="acc-1",
        purpose=purpose,
        object_id=object_id,
        method=method,
        otp_challenge_id=otp_challenge_id,
        now=START,
    )
    async with new_uow() as uow:
        await uow.step_up_challenges.add(challenge)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.step_up_challenges.get("step-1", for_update=True)
        assert loaded == challenge
        assert loaded is not None
        proof = VerifiedFactor(
            "acc-1", method, ChallengePurpose.STEP_UP, START, challenge_id=otp_challenge_id
        )
        loaded.complete(proof, START + timedelta(minutes=1))
        await uow.step_up_challenges.save(loaded)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.step_up_challenges.get("step-1") == loaded
        assert await uow.step_up_challenges.get("unknown") is None


@pytest.mark.parametrize(
    "pending",
    [
        PendingContact(
            id="pc-1",
            purpose=PendingContactPurpose.REGISTRATION,
            account_id=None,
            contact=Phone.parse("+8613900139000"),
            challenge_id="otp-1",
            created_at=START,
            expires_at=START + timedelta(minutes=10),
            password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        ),
        PendingContact(
            id="pc-1",
            purpose=PendingContactPurpose.CHANGE,
            account_id="acc-1",
            contact=Email.parse("Li.New@Example.org"),
            challenge_id="otp-1",
            created_at=START,
            expires_at=START + timedelta(minutes=15),
            requested_by=Actor.service("binding"),
        ),
    ],
    ids=["registration", "change"],
)
async def test_a_pending_contact_comes_back_and_its_completion_is_saved(
    new_uow: NewUnitOfWork, pending: PendingContact
) -> None:
    async with new_uow() as uow:
        await uow.pending_contacts.add(pending)
        await uow.commit()

    async with new_uow() as uow:
        loaded = await uow.pending_contacts.get("pc-1", for_update=True)
        assert loaded == pending
        assert loaded is not None
        loaded.complete(contact_id="c-9", now=START + timedelta(minutes=2))
        await uow.pending_contacts.save(loaded)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.pending_contacts.get("pc-1") == loaded
