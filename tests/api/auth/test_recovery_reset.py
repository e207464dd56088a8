"""Credential reset through real gRPC calls, codes read from the SMS webhook and the SMTP inbox:
the new password works, every old session is dead, every contact is told; an unknown account
gets the same answer; wrong and expired codes are refused as the API documents."""

from __future__ import annotations

from datetime import timedelta

import grpc

from services.auth.service.fakes import FakeClock
from tests.api.auth.harness import (
    DEFAULT_PASSWORD,
    AuthTestApp,
    StartAuth,
    bearer,
    phone_contact,
    request_id,
)
from tests.api.auth.recovery_helpers import (
    EMAIL,
    NEW_PASSWORD,
    SMS,
    complete_reset,
    new_holder,
    refused,
    start_reset,
    wrong_code,
)
from wallet.auth.v1 import auth_service_pb2 as pb
from walletcore.clock import utc_now


async def test_a_reset_by_sms_ends_every_session_signs_in_anew_and_tells_every_contact(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    second_session = (await auth_app.sign_in(holder.by_email)).tokens

    started = await start_reset(auth_app, holder.by_phone, SMS)
    await complete_reset(auth_app, started.reset_id, await auth_app.next_code(holder.phone))

    for tokens in (holder.tokens, second_session):
        old_token = await refused(
            auth_app.public.ListSessions(
                pb.ListSessionsRequest(), metadata=bearer(tokens.access_token)
            )
        )
        assert (old_token.code, old_token.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "SESSION_REVOKED",
        )
        old_refresh = await refused(
            auth_app.public.RefreshSession(
                pb.RefreshSessionRequest(
                    request_id=request_id(), refresh_token=tokens.refresh_token
                )
            )
        )
        assert old_refresh.code == grpc.StatusCode.UNAUTHENTICATED
    old_password = await refused(auth_app.sign_in(holder.by_phone, DEFAULT_PASSWORD))
    assert old_password.reason == "CREDENTIALS_INVALID"
    assert (await auth_app.sign_in(holder.by_phone, NEW_PASSWORD)).HasField("tokens")
    for destination in (holder.phone, holder.email):
        assert "password" in (await auth_app.next_message_text(destination)).lower()


async def test_a_reset_by_email_sends_the_code_to_the_verified_email_and_it_works_once(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)

    started = await start_reset(auth_app, holder.by_phone, EMAIL)
    code = await auth_app.next_code(holder.email)
    await complete_reset(auth_app, started.reset_id, code)
    reuse = await refused(
        complete_reset(auth_app, started.reset_id, code, new_password="yet another passphrase")
    )

    assert (await auth_app.sign_in(holder.by_email, NEW_PASSWORD)).HasField("tokens")
    assert (reuse.code, reuse.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CODE_EXPIRED")


async def test_an_unknown_account_gets_the_same_answer_and_no_code(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    unknown_phone = auth_app.new_phone()

    unknown = await start_reset(auth_app, phone_contact(unknown_phone))
    known = await start_reset(auth_app, holder.by_phone)
    code = await auth_app.next_code(holder.phone)

    assert [f.name for f, _ in unknown.ListFields()] == [f.name for f, _ in known.ListFields()]
    assert len(unknown.reset_id) == len(known.reset_id)
    gap = known.expires_at.ToDatetime() - unknown.expires_at.ToDatetime()
    assert timedelta(0) <= gap < timedelta(seconds=5)
    assert [m for m in auth_app.sms.messages if m.to == unknown_phone] == []
    completion = await refused(complete_reset(auth_app, unknown.reset_id, code))
    assert (completion.code, completion.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CODE_INVALID",
    )


async def test_a_known_and_an_unknown_identifier_get_the_same_reply_and_metadata(
    start_auth: StartAuth,
) -> None:
    """Everything but the random id is equal, byte for byte: fields, expiry (on a clock that
    stands still), and the metadata before and after the reply."""
    async with start_auth(clock=FakeClock(utc_now())) as app:
        holder = await new_holder(app)
        answers = []
        for identifier in (phone_contact(app.new_phone()), holder.by_phone):
            call = app.public.StartCredentialReset(
                pb.StartCredentialResetRequest(
                    request_id=request_id(), identifier=identifier, channel=SMS
                ),
                metadata=(("x-request-id", "same-request-id"),),
            )
            reply = await call
            answers.append(
                (
                    len(reply.reset_id),
                    pb.StartCredentialResetResponse(expires_at=reply.expires_at),
                    tuple(await call.initial_metadata() or ()),
                    tuple(await call.trailing_metadata() or ()),
                    await call.code(),
                )
            )
        await app.next_code(holder.phone)

    unknown, known = answers
    assert unknown == known


async def test_a_reset_by_email_on_the_sms_channel_does_not_tell_which_phone_is_the_accounts(
    auth_app: AuthTestApp,
) -> None:
    """The attack: had the first start charged the account's phone, the second would answer
    RESOURCE_EXHAUSTED for this phone only, linking it to the e-mail."""
    holder = await new_holder(auth_app)
    await start_reset(auth_app, holder.by_email, SMS)
    await auth_app.next_code(holder.phone)

    by_phone = await start_reset(auth_app, holder.by_phone, SMS)

    await complete_reset(auth_app, by_phone.reset_id, await auth_app.next_code(holder.phone))


async def test_five_wrong_codes_end_the_reset_even_for_the_right_code(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    started = await start_reset(auth_app, holder.by_phone)
    code = await auth_app.next_code(holder.phone)

    answers = [
        await refused(complete_reset(auth_app, started.reset_id, wrong_code(code)))
        for _ in range(5)
    ]
    right = await refused(complete_reset(auth_app, started.reset_id, code))

    assert [(a.code, a.reason) for a in answers] == [
        (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
    ] * 4 + [(grpc.StatusCode.FAILED_PRECONDITION, "TOO_MANY_ATTEMPTS")]
    assert answers[0].metadata["attempts_left"] == "4"
    assert (right.code, right.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOO_MANY_ATTEMPTS")
    assert (await auth_app.sign_in(holder.by_phone, DEFAULT_PASSWORD)).HasField("tokens")


async def test_an_expired_code_is_refused(start_auth: StartAuth) -> None:
    clock = FakeClock(utc_now())
    async with start_auth(clock=clock) as app:
        holder = await new_holder(app)
        started = await start_reset(app, holder.by_phone)
        code = await app.next_code(holder.phone)
        clock.advance(timedelta(minutes=10))

        expired = await refused(complete_reset(app, started.reset_id, code))

    assert (expired.code, expired.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CODE_EXPIRED")


async def test_a_bad_request_names_its_fields(auth_app: AuthTestApp) -> None:
    missing = await refused(
        auth_app.public.StartCredentialReset(
            pb.StartCredentialResetRequest(request_id=request_id())
        )
    )
    bad_phone = await refused(
        auth_app.public.StartCredentialReset(
            pb.StartCredentialResetRequest(
                request_id=request_id(), identifier=phone_contact("12345"), channel=SMS
            )
        )
    )

    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in missing.field_violations] == ["identifier"]
    assert [v.field for v in bad_phone.field_violations] == ["identifier.phone"]
