"""Step-up through real gRPC calls: an SMS code buys a grant that another service verifies with
the keys auth publishes; challenges are the caller's own; methods follow the account."""

from __future__ import annotations

import json

import grpc

from tests.api.auth.harness import AuthTestApp, request_id, service_metadata
from tests.api.auth.recovery_helpers import Holder, new_holder, refused, wrong_code
from wallet.auth.v1 import account_status_service_pb2, types_pb2
from wallet.auth.v1 import auth_service_pb2 as pb
from walletcore.tokens import GrantVerifier, StaticKeySet


async def start_sms_step_up(
    app: AuthTestApp, holder: Holder, card_id: str = "card-7"
) -> pb.StartStepUpResponse:
    return await app.public.StartStepUp(
        pb.StartStepUpRequest(
            request_id=request_id(),
            purpose=types_pb2.STEP_UP_PURPOSE_UNBIND_CARD,
            object_id=card_id,
            method=types_pb2.STEP_UP_METHOD_SMS,
        ),
        metadata=holder.metadata,
    )


async def complete_step_up(
    app: AuthTestApp, holder: Holder, challenge_id: str, code: str, call_id: str | None = None
) -> pb.CompleteStepUpResponse:
    return await app.public.CompleteStepUp(
        pb.CompleteStepUpRequest(
            request_id=call_id or request_id(), challenge_id=challenge_id, code=code
        ),
        metadata=holder.metadata,
    )


async def published_grant_verifier(app: AuthTestApp) -> GrantVerifier:
    """What a consuming service builds: auth's published keys, fetched as binding."""
    listed = await app.internal.ListSigningKeys(
        account_status_service_pb2.ListSigningKeysRequest(), metadata=service_metadata("binding")
    )
    keys = StaticKeySet([json.loads(key.public_jwk) for key in listed.keys])
    return GrantVerifier(keys, app.settings.issuer)


async def test_an_sms_step_up_gives_a_grant_other_services_can_verify(
    auth_app: AuthTestApp,
) -> None:
    holder = await new_holder(auth_app)
    started = await start_sms_step_up(auth_app, holder)
    code = await auth_app.next_code(holder.phone)

    call_id = request_id()
    completed = await complete_step_up(auth_app, holder, started.challenge_id, code, call_id)
    retried = await complete_step_up(auth_app, holder, started.challenge_id, code, call_id)

    assert started.masked_destination.endswith(holder.phone[-4:])
    assert holder.phone not in started.masked_destination
    grant = completed.grant
    assert retried.grant == grant
    assert (grant.purpose, grant.object_id) == (types_pb2.STEP_UP_PURPOSE_UNBIND_CARD, "card-7")
    verifier = await published_grant_verifier(auth_app)
    verified = await verifier.verify(
        grant.token, account_id=holder.account_id, purpose="UNBIND_CARD", object_id="card-7"
    )
    assert verified.expires_at == grant.expires_at.ToDatetime().replace(
        tzinfo=verified.expires_at.tzinfo
    )


async def test_another_users_challenge_is_not_found(auth_app: AuthTestApp) -> None:
    owner = await new_holder(auth_app)
    other = await new_holder(auth_app)
    started = await start_sms_step_up(auth_app, owner)
    code = await auth_app.next_code(owner.phone)

    refusal = await refused(complete_step_up(auth_app, other, started.challenge_id, code))

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "CHALLENGE_NOT_FOUND")


async def test_a_method_the_account_cannot_use_is_refused(auth_app: AuthTestApp) -> None:
    holder = await new_holder(auth_app)

    refusal = await refused(
        auth_app.public.StartStepUp(
            pb.StartStepUpRequest(
                request_id=request_id(),
                purpose=types_pb2.STEP_UP_PURPOSE_UNBIND_CARD,
                object_id="card-7",
                method=types_pb2.STEP_UP_METHOD_TOTP,
            ),
            metadata=holder.metadata,
        )
    )

    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "STEP_UP_METHOD_UNAVAILABLE",
    )


async def test_wrong_codes_beyond_the_limit_end_the_challenge(auth_app: AuthTestApp) -> None:
    holder = await new_holder(auth_app)
    started = await start_sms_step_up(auth_app, holder)
    code = await auth_app.next_code(holder.phone)

    reasons = [
        (
            await refused(
                complete_step_up(auth_app, holder, started.challenge_id, wrong_code(code))
            )
        ).reason
        for _ in range(5)
    ]
    right = await refused(complete_step_up(auth_app, holder, started.challenge_id, code))

    assert reasons == ["CODE_INVALID"] * 4 + ["TOO_MANY_ATTEMPTS"]
    assert (right.code, right.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOO_MANY_ATTEMPTS")


async def test_a_purpose_without_its_object_names_the_field(auth_app: AuthTestApp) -> None:
    holder = await new_holder(auth_app)

    refusal = await refused(start_sms_step_up(auth_app, holder, card_id=""))

    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "OBJECT_REQUIRED")
    assert [v.field for v in refusal.field_violations] == ["object_id"]
