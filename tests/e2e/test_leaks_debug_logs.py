"""Nothing secret or personal reaches a log, even at debug level (SPEC 7): auth, kyc and binding
run as processes with LOG_LEVEL=DEBUG (so every library's debug records are written too), a
user registers by phone, adds an e-mail, fails a password, refreshes, enrols TOTP, fails and
passes a second factor, resets the password by e-mail with the authenticator, is verified by
kyc and binds a card. Every process's output and every error message a client got are then
scanned for each code, password, token, TOTP secret, recovery code, identity number, card
number, phone number and e-mail address the run used: zero hits.

Fixed ports 30400-30411 (this test's range): each service learns its peers' addresses before
they start.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Final, TypeVar

import grpc
import grpc.aio
import pyotp
import pytest

from tests.api.auth.harness import bearer
from tests.api.kyc.harness import LEGAL_NAME, RESIDENT_ID, reviewer, submit_request
from tests.e2e.test_kyc_process import (
    ServiceProcess,
    fixed_ports,
    request_id,
    started_in_order,
    stop,
)
from tests.support.figures import record
from tests.support.notify import SmsWebhookCatcher, SmtpCatcher, extract_code
from tests.support.retry import when_allowed
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import auth_service_pb2_grpc, types_pb2
from wallet.binding.v1 import binding_service_pb2, binding_service_pb2_grpc
from wallet.common.v1 import client_pb2, contact_pb2
from wallet.kyc.v1 import kyc_review_service_pb2, kyc_review_service_pb2_grpc, kyc_service_pb2_grpc
from wallet.kyc.v1 import types_pb2 as kyc_types

_T = TypeVar("_T")

BASE_PORT: Final = 30400
PHONE: Final = "+8613800138789"
EMAIL: Final = "leak-check@example.com"
PASSWORD: Final = "correct horse battery staple"
WRONG_PASSWORD: Final = "a password that is wrong"
NEW_PASSWORD: Final = "a much better passphrase"
TEST_CARD: Final = "4242 4242 4242 4242"
CLIENT: Final = client_pb2.ClientContext(
    device_id="e2e-leak-device", platform=client_pb2.PLATFORM_IOS
)
# Fields of a JSON log line that hold the run's own clock and numbers, never a caller's data:
# dropped before the scan, so a code cannot "match" a timestamp's microseconds.
_CLOCK_FIELDS: Final = ("time", "duration_ms")
CODE: Final = re.compile(r"\b\d{6}\b")


@pytest.fixture
async def debug_services(
    tmp_path: Path, sms_webhook_catcher: SmsWebhookCatcher, smtp_catcher: SmtpCatcher
) -> AsyncIterator[dict[str, ServiceProcess]]:
    ports = fixed_ports(BASE_PORT, ("auth", "kyc", "binding"))
    auth_internal = f"127.0.0.1:{ports['auth']['INTERNAL']}"
    common = {"RATE_LIMITER": "memory", "LOG_LEVEL": "DEBUG"}
    settings = {
        "auth": {
            **common,
            "OUTBOX_POLL_SECONDS": "0.05",
            # The e-mail takes a verification code and then a reset code: a second apart.
            "CODE_RESEND_INTERVAL_SECONDS": "1",
            "NOTIFIER__EMAIL_ADAPTER": "smtp",
            "NOTIFIER__SMTP_HOST": smtp_catcher.host,
            "NOTIFIER__SMTP_PORT": str(smtp_catcher.port),
            "NOTIFIER__SMTP_STARTTLS": "false",
            "NOTIFIER__SMS_ADAPTER": "webhook",
            "NOTIFIER__SMS_WEBHOOK_URL": sms_webhook_catcher.url,
        },
        "kyc": {**common, "AUTH_INTERNAL_ADDRESS": auth_internal},
        "binding": {
            **common,
            "VAULT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'binding-vault.db'}",
            "AUTH_INTERNAL_ADDRESS": auth_internal,
            "KYC_INTERNAL_ADDRESS": f"127.0.0.1:{ports['kyc']['INTERNAL']}",
        },
    }
    async with started_in_order(tmp_path, settings, ports) as running:
        yield running


class Run:
    """What the run used that must stay out of the logs, and the messages clients got."""

    def __init__(self) -> None:
        self.secrets: set[str] = {PHONE, EMAIL, PASSWORD, WRONG_PASSWORD, NEW_PASSWORD}
        self.secrets |= {TEST_CARD, TEST_CARD.replace(" ", ""), RESIDENT_ID, LEGAL_NAME}
        self.error_messages: list[str] = []

    def keep(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    async def refused(self, call: Awaitable[object]) -> grpc.StatusCode:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            self.error_messages.append(error.details() or "")
            self.error_messages.extend(str(v) for _, v in error.trailing_metadata() or ())
            return error.code()
        raise AssertionError("the call succeeded")


async def next_emailed_code(smtp: SmtpCatcher, to: str) -> str:
    """The code of the next e-mail to `to` that carries one (security notices carry none)."""
    for _ in range(10):
        text = (await smtp.wait_for(to=to)).text
        if CODE.search(text):
            return extract_code(text)
    raise AssertionError(f"no code reached {to}")


def scanned_text(output: str) -> str:
    """A process's output with each JSON log line's clock fields dropped."""
    lines = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        if isinstance(entry, dict):
            for name in _CLOCK_FIELDS:
                entry.pop(name, None)
        lines.append(json.dumps(entry, ensure_ascii=False))
    return "\n".join(lines)


def hits(secret: str, text: str) -> int:
    """Occurrences of `secret` as a whole token (a 6-digit code inside a longer number or a hex
    id is not that code)."""
    return len(re.findall(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text))


async def user_journey(
    services: dict[str, ServiceProcess],
    sms: SmsWebhookCatcher,
    smtp: SmtpCatcher,
    run: Run,
) -> None:
    auth, kyc, binding = (services[name] for name in ("auth", "kyc", "binding"))
    async with (
        grpc.aio.insecure_channel(auth.address("PUBLIC")) as auth_channel,
        grpc.aio.insecure_channel(kyc.address("PUBLIC")) as kyc_public,
        grpc.aio.insecure_channel(kyc.address("ADMIN")) as kyc_admin,
        grpc.aio.insecure_channel(binding.address("PUBLIC")) as binding_public,
    ):
        users = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
        phone = contact_pb2.Contact(phone=PHONE)
        started = await users.StartRegistration(
            auth_pb.StartRegistrationRequest(
                request_id=request_id(), password=PASSWORD, contact=phone
            )
        )
        code = extract_code((await sms.wait_for(to=PHONE)).text)
        registered = await users.CompleteRegistration(
            auth_pb.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=code,
                client=CLIENT,
            )
        )
        tokens = registered.tokens
        run.keep(code, tokens.access_token, tokens.refresh_token)
        user = bearer(tokens.access_token)

        await run.refused(
            users.SignIn(
                auth_pb.SignInRequest(
                    request_id=request_id(),
                    identifier=phone,
                    password=WRONG_PASSWORD,
                    client=CLIENT,
                )
            )
        )
        added = await users.AddContact(
            auth_pb.AddContactRequest(
                request_id=request_id(), contact=contact_pb2.Contact(email=EMAIL)
            ),
            metadata=user,
        )
        email_code = extract_code((await smtp.wait_for(to=EMAIL)).text)
        run.keep(email_code)
        await run.refused(
            users.VerifyContact(
                auth_pb.VerifyContactRequest(
                    request_id=request_id(),
                    verification_id=added.verification_id,
                    code=f"{(int(email_code) + 1) % 1_000_000:06d}",
                ),
                metadata=user,
            )
        )
        await users.VerifyContact(
            auth_pb.VerifyContactRequest(
                request_id=request_id(), verification_id=added.verification_id, code=email_code
            ),
            metadata=user,
        )
        refreshed = await users.RefreshSession(
            auth_pb.RefreshSessionRequest(
                request_id=request_id(), refresh_token=tokens.refresh_token
            )
        )
        run.keep(refreshed.tokens.access_token, refreshed.tokens.refresh_token)
        user = bearer(refreshed.tokens.access_token)

        enrolment = await users.StartTotpEnrollment(
            auth_pb.StartTotpEnrollmentRequest(request_id=request_id()), metadata=user
        )
        totp = pyotp.TOTP(enrolment.secret)
        now = time.time()
        first_code = totp.at(now)
        confirmed = await users.ConfirmTotpEnrollment(
            auth_pb.ConfirmTotpEnrollmentRequest(
                request_id=request_id(), enrollment_id=enrolment.enrollment_id, code=first_code
            ),
            metadata=user,
        )
        run.keep(enrolment.secret, enrolment.otpauth_uri, first_code, *confirmed.recovery_codes)

        pending = await users.SignIn(
            auth_pb.SignInRequest(
                request_id=request_id(), identifier=phone, password=PASSWORD, client=CLIENT
            )
        )
        ticket = pending.second_factor_required.ticket
        run.keep(ticket)
        window = {totp.at(now + 30 * offset) for offset in (-1, 0, 1, 2)}
        wrong_totp = next(c for c in ("000000", "111111", "222222", "333333") if c not in window)
        await run.refused(
            users.CompleteSignIn(
                auth_pb.CompleteSignInRequest(
                    request_id=request_id(),
                    ticket=ticket,
                    second_factor=types_pb2.SecondFactor(totp_code=wrong_totp),
                )
            )
        )
        signed_in = await users.CompleteSignIn(
            auth_pb.CompleteSignInRequest(
                request_id=request_id(),
                ticket=ticket,
                second_factor=types_pb2.SecondFactor(recovery_code=confirmed.recovery_codes[0]),
            )
        )
        run.keep(signed_in.tokens.access_token, signed_in.tokens.refresh_token)

        reset = await when_allowed(
            lambda: users.StartCredentialReset(
                auth_pb.StartCredentialResetRequest(
                    request_id=request_id(),
                    identifier=contact_pb2.Contact(email=EMAIL),
                    channel=types_pb2.DELIVERY_CHANNEL_EMAIL,
                )
            )
        )
        reset_code = await next_emailed_code(smtp, EMAIL)
        # The next step's code: the enrolment used this step's, and ±1 step is accepted.
        reset_totp = totp.at(now + 30)
        run.keep(reset_code, reset_totp)
        await users.CompleteCredentialReset(
            auth_pb.CompleteCredentialResetRequest(
                request_id=request_id(),
                reset_id=reset.reset_id,
                code=reset_code,
                new_password=NEW_PASSWORD,
                second_factor=types_pb2.SecondFactor(totp_code=reset_totp),
            )
        )
        after_reset = await users.SignIn(
            auth_pb.SignInRequest(
                request_id=request_id(), identifier=phone, password=NEW_PASSWORD, client=CLIENT
            )
        )
        final = await users.CompleteSignIn(
            auth_pb.CompleteSignInRequest(
                request_id=request_id(),
                ticket=after_reset.second_factor_required.ticket,
                second_factor=types_pb2.SecondFactor(recovery_code=confirmed.recovery_codes[1]),
            )
        )
        run.keep(after_reset.second_factor_required.ticket, final.tokens.access_token)
        run.keep(final.tokens.refresh_token)
        user = bearer(final.tokens.access_token)

        submitted = await kyc_service_pb2_grpc.KycServiceStub(kyc_public).SubmitVerification(
            submit_request(), metadata=user
        )
        await kyc_review_service_pb2_grpc.KycReviewServiceStub(kyc_admin).DecideCase(
            kyc_review_service_pb2.DecideCaseRequest(
                request_id=request_id(),
                case_id=submitted.verification.verification_id,
                decision=kyc_types.REVIEW_DECISION_APPROVE,
            ),
            metadata=reviewer(),
        )
        cards = binding_service_pb2_grpc.BindingServiceStub(binding_public)
        expiry_year = dt.datetime.now(dt.UTC).year + 3
        await run.refused(
            cards.BindCard(
                binding_service_pb2.BindCardRequest(
                    request_id=request_id(),
                    card_number="4242 4242 4242 4241",  # fails the Luhn check
                    expiry_month=12,
                    expiry_year=expiry_year,
                    holder_name=LEGAL_NAME.upper(),
                ),
                metadata=user,
            )
        )
        run.keep("4242 4242 4242 4241", "4242424242424241")
        await cards.BindCard(
            binding_service_pb2.BindCardRequest(
                request_id=request_id(),
                card_number=TEST_CARD,
                expiry_month=12,
                expiry_year=expiry_year,
                holder_name=LEGAL_NAME.upper(),
            ),
            metadata=user,
        )


async def test_a_debug_level_run_logs_no_code_password_token_secret_or_personal_data(
    debug_services: dict[str, ServiceProcess],
    sms_webhook_catcher: SmsWebhookCatcher,
    smtp_catcher: SmtpCatcher,
) -> None:
    run = Run()
    await user_journey(debug_services, sms_webhook_catcher, smtp_catcher, run)
    exits = {name: await stop(s) for name, s in reversed(debug_services.items())}

    outputs = {name: scanned_text(s.output()) for name, s in debug_services.items()}
    outputs["error messages"] = "\n".join(run.error_messages)
    found = {
        (where, secret): count
        for where, text in outputs.items()
        for secret in sorted(run.secrets)
        if (count := hits(secret, text))
    }
    log_lines = sum(len(s.output().splitlines()) for s in debug_services.values())

    assert exits == {"binding": 0, "kyc": 0, "auth": 0}
    assert sum('"level": "DEBUG"' in s.output() for s in debug_services.values()) == 3
    assert len(run.error_messages) >= 5
    assert found == {}, found
    record(
        "leaks at debug level (auth, kyc, binding as processes)",
        f"{len(run.secrets)} secrets and personal values used, {log_lines:,} log lines and "
        f"{len(run.error_messages)} error messages scanned: 0 hits",
    )
