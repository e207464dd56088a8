"""`python -m services.demo` (`make demo`): a narrated walk-through against the running
`make run` stack, through the public, admin and internal APIs, as a user, the payment system
and the security team would go through it.

It reads the same variables as the launcher (`AUTH_PUBLIC_PORT`, ... and
`AUTH_NOTIFIER__INBOX_PATH`), so it finds a stack whose ports were moved; it takes the codes
the services send from the development inbox (`walletcore.notify.inbox`), mints development
operator and service tokens as `python -m walletcore.keytool` does, and runs the security
team's steps through `walletsec`, the command they use. Each step prints what it did; the
first that does not do what it says stops the walk-through with one line on stderr and exit
status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import grpc
import pyotp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.__main__ import HOST, ROOT, STACK, inbox_path
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import auth_service_pb2_grpc
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.binding.v1 import binding_service_pb2 as binding_pb
from wallet.binding.v1 import binding_service_pb2_grpc
from wallet.common.v1 import client_pb2, contact_pb2, money_pb2
from wallet.kyc.v1 import kyc_service_pb2 as kyc_pb
from wallet.kyc.v1 import kyc_service_pb2_grpc
from wallet.kyc.v1 import types_pb2 as kyc_types
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import payment_ledger_service_pb2_grpc, refund_service_pb2_grpc
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from wallet.refund.v1 import types_pb2 as refund_types
from walletcore.grpc.convert import timestamp
from walletcore.grpc.status import error_details
from walletcore.identity import OperatorRole
from walletcore.notify.inbox import DevelopmentInbox, InboxTimeout, has_code, one_time_code
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    SigningKeyRing,
    TokenIssuer,
)

RPC_SECONDS: Final = 10.0
REFUND_SECONDS: Final = 30.0
REFUND_POLL_SECONDS: Final = 0.2
ENDED_UNPAID: Final = (refund_types.REFUND_STATE_FAILED, refund_types.REFUND_STATE_REJECTED)
CLI_SECONDS: Final = 60.0
MAX_RESEND_WAIT: Final = 120.0
# The demo user's passwords, printed nowhere: not secrets of anything but this walk-through.
PASSWORD: Final = "correct horse battery staple"  # noqa: S105
NEW_PASSWORD: Final = "a different horse, battery and staple"  # noqa: S105
TEST_CARD: Final = "4242 4242 4242 4242"
"""The card networks' public test number (Visa)."""
LEGAL_NAME: Final = "Zhang San"
"""The customary placeholder name, like John Doe."""
RESIDENT_ID: Final = "11010519491231002X"
"""GB 11643-1999's own example number."""
# Placeholder images: kyc checks an image's type by its leading bytes.
JPEG: Final = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 2048
PNG: Final = b"\x89PNG\r\n\x1a\n" + b"\x22" * 2048
PAYMENT_MINOR: Final = 10_000
REFUND_MINOR: Final = 3_000
CURRENCY: Final = "CNY"
RECOVERY_CODES: Final = 10
TICKET: Final = "DEMO-1"
TOKEN_TTL: Final = dt.timedelta(minutes=15)
CLIENT: Final = client_pb2.ClientContext(device_id="make-demo", platform=client_pb2.PLATFORM_WEB)

_R = TypeVar("_R")
Metadata = tuple[tuple[str, str], ...]


class StepFailed(Exception):
    """What went wrong in the current step, as the one line the user reads."""


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def request_id() -> str:
    return uuid.uuid4().hex


def refusal(error: grpc.RpcError) -> str:
    details = error_details(error)
    reason = f"/{details.reason}" if details.reason else ""
    return f"{details.code.name}{reason}: {details.message or details.code.name.lower()}"


def refused_reason(error: grpc.RpcError) -> str:
    details = error_details(error)
    return f"{details.code.name}/{details.reason}" if details.reason else details.code.name


@dataclass
class Stack:
    """The addresses of the running stack, from the launcher's variables."""

    environ: Mapping[str, str]

    def address(self, service: str, kind: str) -> str:
        member = next(m for m in STACK if m.name == service)
        return f"{HOST}:{member.ports(self.environ)[kind]}"


@dataclass
class Authenticator:
    """The user's authenticator app: RFC 6238 codes from the enrolled secret. Auth accepts a
    code once, for the current 30-second step or one either side, so a second sign-in within
    the same step takes the next step's code (what an app whose clock runs a little ahead
    shows)."""

    secret: str
    last_step: int | None = None

    def code(self) -> str:
        totp = pyotp.TOTP(self.secret)
        step = totp.timecode(dt.datetime.now(dt.UTC))
        if self.last_step is not None and step <= self.last_step:
            step = self.last_step + 1
        self.last_step = step
        return str(totp.generate_otp(step))


@dataclass
class User:
    """What the walk-through learns about its user on the way."""

    account_id: str
    metadata: Metadata
    app: Authenticator | None = None
    recovery_codes: list[str] = field(default_factory=list)
    card_id: str = ""
    payment_id: str = ""

    def recovery_code(self) -> auth_types.SecondFactor:
        """An unused recovery code (each works once)."""
        if not self.recovery_codes:
            raise StepFailed("no recovery code left")
        return auth_types.SecondFactor(recovery_code=self.recovery_codes.pop())


@dataclass
class Demo:
    stack: Stack
    inbox: DevelopmentInbox
    phone: str
    out: Callable[[str], None] = print
    number: int = 0
    title: str = ""
    channels: dict[str, grpc.Channel] = field(default_factory=dict)
    issuer: TokenIssuer = field(
        default_factory=lambda: TokenIssuer(
            DEVELOPMENT_IDENTITY_ISSUER, SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
        )
    )

    # -- narration and calls --------------------------------------------------------------

    def step(self, title: str) -> None:
        self.number += 1
        self.title = title
        self.out(f"\n{self.number:2}. {title}")

    def say(self, line: str) -> None:
        self.out(f"    {line}")

    def channel(self, service: str, kind: str) -> grpc.Channel:
        address = self.stack.address(service, kind)
        if address not in self.channels:
            self.channels[address] = grpc.insecure_channel(address)
        return self.channels[address]

    @property
    def contact(self) -> contact_pb2.Contact:
        return contact_pb2.Contact(phone=self.phone)

    @property
    def auth(self) -> auth_service_pb2_grpc.AuthServiceStub:
        return auth_service_pb2_grpc.AuthServiceStub(self.channel("auth", "PUBLIC"))

    @property
    def kyc(self) -> kyc_service_pb2_grpc.KycServiceStub:
        return kyc_service_pb2_grpc.KycServiceStub(self.channel("kyc", "PUBLIC"))

    @property
    def cards(self) -> binding_service_pb2_grpc.BindingServiceStub:
        return binding_service_pb2_grpc.BindingServiceStub(self.channel("binding", "PUBLIC"))

    @property
    def refunds(self) -> refund_service_pb2_grpc.RefundServiceStub:
        return refund_service_pb2_grpc.RefundServiceStub(self.channel("refund", "PUBLIC"))

    def call(
        self, what: str, method: Callable[..., _R], request: object, metadata: Metadata = ()
    ) -> _R:
        try:
            return method(request, metadata=metadata, timeout=RPC_SECONDS)
        except grpc.RpcError as error:
            raise StepFailed(f"{what} was refused ({refusal(error)})") from None

    def call_after_resend_interval(
        self, what: str, method: Callable[..., _R], request: Callable[[], object]
    ) -> _R:
        """`call`, waiting once as long as auth's RetryInfo asks when the number had a code
        within the resend interval (AUTH_CODE_RESEND_INTERVAL_SECONDS, a minute by default)."""
        try:
            return method(request(), timeout=RPC_SECONDS)
        except grpc.RpcError as error:
            details = error_details(error)
            wait = details.retry_after
            if details.reason != "RATE_LIMITED" or wait is None or wait > MAX_RESEND_WAIT:
                raise StepFailed(f"{what} was refused ({refusal(error)})") from None
        self.say(f"auth sends one code per interval to a number: waiting {wait:.0f} s, as asked")
        time.sleep(wait)
        return self.call(what, method, request())

    def refused(
        self,
        what: str,
        method: Callable[..., object],
        request: object,
        metadata: Metadata,
        expected: str,
    ) -> str:
        """Calls `method` and returns the refusal's `CODE/REASON`; fails unless it is
        `expected`."""
        try:
            method(request, metadata=metadata, timeout=RPC_SECONDS)
        except grpc.RpcError as error:
            seen = refused_reason(error)
            if seen != expected:
                raise StepFailed(
                    f"{what} was refused with {refusal(error)}, not {expected}"
                ) from None
            return seen
        raise StepFailed(f"{what} succeeded; it should have been refused with {expected}")

    def code_sent(self, after: int) -> str:
        try:
            message = self.inbox.wait_for(self.phone, after=after, where=has_code)
        except InboxTimeout as timeout:
            raise StepFailed(str(timeout)) from None
        code = one_time_code(message.body)
        self.say(f"SMS to {self.phone} in {self.inbox.path}: {message.body!r}")
        return code

    def walletsec(self, role: OperatorRole, *arguments: str) -> str:
        """Runs `walletsec` as the security team does, with a development token of `role`."""
        token = self.issuer.operator_token(
            operator_id=f"demo-{role.value.replace('_', '-')}",
            role=role.value,
            ttl=TOKEN_TTL,
        ).token
        environment = {
            **self.stack.environ,
            "WALLETSEC_OPERATOR_TOKEN": token,
            "WALLETSEC_AUTH_ADMIN": self.stack.address("auth", "ADMIN"),
            "WALLETSEC_KYC_ADMIN": self.stack.address("kyc", "ADMIN"),
            "COLUMNS": "160",
        }
        environment.pop("WALLETSEC_OPERATOR_TOKEN_FILE", None)
        self.say(f"$ walletsec {shlex.join(arguments)}    (as {role.value})")
        try:
            finished = subprocess.run(  # noqa: S603 (our own interpreter, our own arguments)
                [sys.executable, "-m", "walletsec", *arguments],
                env=environment,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=CLI_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(f"walletsec did not finish within {CLI_SECONDS:g} s") from None
        if finished.returncode != 0:
            said = finished.stderr.strip().splitlines()
            raise StepFailed(
                f"walletsec exited with status {finished.returncode}: "
                f"{said[-1] if said else 'nothing on stderr'}"
            )
        for line in finished.stdout.rstrip().splitlines():
            self.say(f"  {line}")
        return finished.stdout

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    # -- the walk-through -----------------------------------------------------------------

    def check_serving(self) -> None:
        self.step("the stack is serving")
        for member in STACK:
            for kind in ("PUBLIC", "ADMIN", "INTERNAL"):
                address = self.stack.address(member.name, kind)
                try:
                    reply = health_pb2_grpc.HealthStub(self.channel(member.name, kind)).Check(
                        health_pb2.HealthCheckRequest(), timeout=RPC_SECONDS
                    )
                except grpc.RpcError as error:
                    raise StepFailed(
                        f"{member.name} {kind.lower()} port {address} does not answer "
                        f"({error_details(error).code.name}): is `make run` serving?"
                    ) from None
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    raise StepFailed(f"{member.name} at {address} is not SERVING")
            self.say(f"{member.name:8} public {self.stack.address(member.name, 'PUBLIC')}")
        self.say(f"codes are read from {self.inbox.path}")

    def run(self) -> None:
        self.check_serving()
        user = self.register()
        self.enrol_totp(user)
        self.sign_out_and_in(user)
        self.reset_password(user)
        self.verify_identity(user)
        self.bind_card(user)
        self.record_payment(user)
        self.refund_to_card(user)
        self.freeze(user)
        self.frozen_everywhere(user)
        self.unfreeze(user)
        self.timeline(user)
        self.out(f"\ndemo complete: {self.number} steps, account {user.account_id}")

    # -- the steps ------------------------------------------------------------------------

    def register(self) -> User:
        self.step(f"register by phone {self.phone}")
        mark = self.inbox.mark()
        started = self.call(
            "auth StartRegistration",
            self.auth.StartRegistration,
            auth_pb.StartRegistrationRequest(
                request_id=request_id(), contact=self.contact, password=PASSWORD
            ),
        )
        registered = self.call(
            "auth CompleteRegistration",
            self.auth.CompleteRegistration,
            auth_pb.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=self.code_sent(after=mark),
                client=CLIENT,
            ),
        )
        self.say(f"account {registered.account_id} created and signed in")
        return User(registered.account_id, bearer(registered.tokens.access_token))

    def enrol_totp(self, user: User) -> None:
        self.step("enrol TOTP with an authenticator app")
        enrolment = self.call(
            "auth StartTotpEnrollment",
            self.auth.StartTotpEnrollment,
            auth_pb.StartTotpEnrollmentRequest(request_id=request_id()),
            user.metadata,
        )
        user.app = Authenticator(enrolment.secret)
        self.say(f"the app scans {enrolment.otpauth_uri.split('?')[0]}?...")
        confirmed = self.call(
            "auth ConfirmTotpEnrollment",
            self.auth.ConfirmTotpEnrollment,
            auth_pb.ConfirmTotpEnrollmentRequest(
                request_id=request_id(),
                enrollment_id=enrolment.enrollment_id,
                code=user.app.code(),
            ),
            user.metadata,
        )
        user.recovery_codes = list(confirmed.recovery_codes)
        if len(user.recovery_codes) != RECOVERY_CODES:
            raise StepFailed(
                f"expected {RECOVERY_CODES} recovery codes, got {len(user.recovery_codes)}"
            )
        self.say(f"TOTP enabled; {RECOVERY_CODES} recovery codes to keep somewhere safe")

    def sign_out_and_in(self, user: User) -> None:
        self.step("sign out, then sign in with the password and a TOTP code")
        signing_out = auth_pb.SignOutRequest(request_id=request_id())
        self.call("auth SignOut", self.auth.SignOut, signing_out, user.metadata)
        try:
            self.auth.GetAccount(
                auth_pb.GetAccountRequest(), metadata=user.metadata, timeout=RPC_SECONDS
            )
        except grpc.RpcError as error:
            self.say(f"signed out: the old token is refused ({refused_reason(error)})")
        else:
            raise StepFailed("auth GetAccount accepted the token of a signed-out session")
        if user.app is None:
            raise StepFailed("no authenticator app was enrolled")
        totp = auth_types.SecondFactor(totp_code=user.app.code())
        user.metadata = self.sign_in(PASSWORD, totp)
        self.say("signed in: the password, then the TOTP code")

    def reset_password(self, user: User) -> None:
        self.step("reset the password with a code sent by SMS")
        mark = self.inbox.mark()
        reset = self.call_after_resend_interval(
            "auth StartCredentialReset",
            self.auth.StartCredentialReset,
            lambda: auth_pb.StartCredentialResetRequest(
                request_id=request_id(),
                identifier=self.contact,
                channel=auth_types.DELIVERY_CHANNEL_SMS,
            ),
        )
        self.call(
            "auth CompleteCredentialReset",
            self.auth.CompleteCredentialReset,
            auth_pb.CompleteCredentialResetRequest(
                request_id=request_id(),
                reset_id=reset.reset_id,
                code=self.code_sent(after=mark),
                new_password=NEW_PASSWORD,
                # The account has TOTP, so a reset needs a second factor too.
                second_factor=user.recovery_code(),
            ),
        )
        self.say("new password set with the SMS code and a recovery code (TOTP is on)")
        wrong = "UNAUTHENTICATED/CREDENTIALS_INVALID"
        self.refused(
            "auth SignIn with the old password",
            self.auth.SignIn,
            auth_pb.SignInRequest(
                request_id=request_id(), identifier=self.contact, password=PASSWORD, client=CLIENT
            ),
            (),
            wrong,
        )
        self.say(f"the old password is refused ({wrong})")
        # The TOTP code of this 30-second step is spent: a recovery code signs in now.
        user.metadata = self.sign_in(NEW_PASSWORD, user.recovery_code())
        self.say("signed in with the new password (the reset ended every session)")

    def verify_identity(self, user: User) -> None:
        self.step("submit KYC, and approve it as a reviewer")
        submitted = self.call(
            "kyc SubmitVerification",
            self.kyc.SubmitVerification,
            kyc_pb.SubmitVerificationRequest(
                request_id=request_id(),
                legal_name=LEGAL_NAME,
                document=kyc_types.IdentityDocument(
                    type=kyc_types.DOCUMENT_TYPE_CN_RESIDENT_ID,
                    number=RESIDENT_ID,
                    issuing_country="CN",
                ),
                front_image=kyc_types.DocumentImage(content=JPEG, content_type="image/jpeg"),
                back_image=kyc_types.DocumentImage(content=PNG, content_type="image/png"),
                selfie_image=kyc_types.DocumentImage(content=JPEG, content_type="image/jpeg"),
            ),
            user.metadata,
        ).verification
        case_id = submitted.verification_id
        self.say(f"case {case_id} submitted ({self.kyc_state(submitted.state)})")
        self.walletsec(OperatorRole.KYC_REVIEWER, "kyc", "decide", case_id, "--decision", "approve")
        verification = self.call(
            "kyc GetVerification",
            self.kyc.GetVerification,
            kyc_pb.GetVerificationRequest(),
            user.metadata,
        ).verification
        if verification.state != kyc_types.VERIFICATION_STATE_APPROVED:
            raise StepFailed(f"the case is {self.kyc_state(verification.state)}, not approved")
        self.say("the user sees the case approved")

    def bind_card(self, user: User) -> None:
        self.step("bind a card")
        bound = self.call(
            "binding BindCard",
            self.cards.BindCard,
            binding_pb.BindCardRequest(
                request_id=request_id(),
                card_number=TEST_CARD,
                expiry_month=12,
                expiry_year=dt.datetime.now(dt.UTC).year + 3,
                holder_name=LEGAL_NAME.upper(),  # matched with the approved KYC name
            ),
            user.metadata,
        ).card
        user.card_id = bound.card_id
        self.say(f"card {bound.card_id} bound: ****{bound.last4}, holder {bound.holder_name}")

    def record_payment(self, user: User) -> None:
        self.step("the payment system records a captured payment from that card")
        ledger = payment_ledger_service_pb2_grpc.PaymentLedgerServiceStub(
            self.channel("refund", "INTERNAL")
        )
        payments = self.issuer.service_token(service="payments", audience="refund", ttl=TOKEN_TTL)
        payment = self.call(
            "refund RecordCapturedPayment",
            ledger.RecordCapturedPayment,
            ledger_pb.RecordCapturedPaymentRequest(
                request_id=request_id(),
                payment_id=f"pay_demo_{secrets.token_hex(6)}",
                account_id=user.account_id,
                amount=money_pb2.Money(amount_minor=PAYMENT_MINOR, currency=CURRENCY),
                source_instrument_id=user.card_id,
                captured_at=timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)),
            ),
            bearer(payments.token),
        ).payment
        user.payment_id = payment.payment_id
        self.say(
            f"payment {payment.payment_id}: {money(PAYMENT_MINOR)} captured an hour ago "
            "(internal API, the payment system's service identity)"
        )

    def refund_to_card(self, user: User) -> None:
        self.step(f"refund {money(REFUND_MINOR)} of it back to the card, to SUCCEEDED")
        refund = self.call(
            "refund RequestRefund",
            self.refunds.RequestRefund,
            self.refund_request(user.payment_id),
            user.metadata,
        ).refund
        self.say(f"refund {refund.refund_id}: {self.refund_state(refund.state)}")
        self.follow_refund(refund, user)

    def freeze(self, user: User) -> None:
        self.step("freeze the account as a security officer")
        self.walletsec(
            OperatorRole.SECURITY_OFFICER,
            "freeze",
            user.account_id,
            "--reason",
            "make demo: reported stolen phone",
            "--ticket",
            TICKET,
        )

    def frozen_everywhere(self, user: User) -> None:
        self.step("every service refuses the frozen account's next request")
        frozen = "FAILED_PRECONDITION/ACCOUNT_FROZEN"
        requests: tuple[tuple[str, Callable[..., object], object], ...] = (
            ("auth GetAccount", self.auth.GetAccount, auth_pb.GetAccountRequest()),
            ("kyc GetVerification", self.kyc.GetVerification, kyc_pb.GetVerificationRequest()),
            ("binding ListCards", self.cards.ListCards, binding_pb.ListCardsRequest()),
            (
                "refund RequestRefund",
                self.refunds.RequestRefund,
                self.refund_request(user.payment_id),
            ),
        )
        for what, method, request in requests:
            self.refused(what, method, request, user.metadata, frozen)
            service, rpc = what.split()
            self.say(f"{service:8} {rpc}: refused ({frozen})")

    def unfreeze(self, user: User) -> None:
        self.step("unfreeze it; the user signs in again")
        self.walletsec(
            OperatorRole.SECURITY_OFFICER,
            "unfreeze",
            user.account_id,
            "--reason",
            "make demo: the owner proved their identity",
            "--ticket",
            TICKET,
        )
        user.metadata = self.sign_in(NEW_PASSWORD, user.recovery_code())
        cards = self.call(
            "binding ListCards", self.cards.ListCards, binding_pb.ListCardsRequest(), user.metadata
        ).cards
        self.say(f"signed in (with a recovery code); binding lists {len(cards)} card(s)")

    def timeline(self, user: User) -> None:
        self.step("the user's security timeline, as the security team sees it")
        printed = self.walletsec(OperatorRole.SECURITY_OFFICER, "timeline", user.account_id)
        for event in ("account_created", "totp_enabled", "credential_reset", "account_frozen"):
            if event not in printed:
                raise StepFailed(f"the timeline shows no {event} event")
        if "account_unfrozen" not in printed:
            raise StepFailed("the timeline shows no account_unfrozen event")

    # -- pieces of steps ------------------------------------------------------------------

    def sign_in(self, password: str, second_factor: auth_types.SecondFactor) -> Metadata:
        """Password, then the second factor this TOTP account needs: the new session."""
        signed_in = self.call(
            "auth SignIn",
            self.auth.SignIn,
            auth_pb.SignInRequest(
                request_id=request_id(), identifier=self.contact, password=password, client=CLIENT
            ),
        )
        if signed_in.WhichOneof("result") != "second_factor_required":
            raise StepFailed("auth SignIn did not ask for the second factor of a TOTP account")
        completed = self.call(
            "auth CompleteSignIn",
            self.auth.CompleteSignIn,
            auth_pb.CompleteSignInRequest(
                request_id=request_id(),
                ticket=signed_in.second_factor_required.ticket,
                second_factor=second_factor,
            ),
        )
        return bearer(completed.tokens.access_token)

    def refund_request(self, payment_id: str) -> refund_pb.RequestRefundRequest:
        return refund_pb.RequestRefundRequest(
            request_id=request_id(),
            payment_id=payment_id,
            amount=money_pb2.Money(amount_minor=REFUND_MINOR, currency=CURRENCY),
            reason=refund_types.REFUND_REASON_NOT_RECEIVED,
        )

    def follow_refund(self, refund: refund_types.Refund, user: User) -> None:
        """Polls the user's GetRefund until SUCCEEDED, printing each new state."""
        state = refund.state
        deadline = time.monotonic() + REFUND_SECONDS
        while refund.state != refund_types.REFUND_STATE_SUCCEEDED:
            if refund.state in (
                refund_types.REFUND_STATE_FAILED,
                refund_types.REFUND_STATE_REJECTED,
            ):
                raise StepFailed(f"the refund ended {self.refund_state(refund.state)}")
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"the refund is still {self.refund_state(refund.state)} after "
                    f"{REFUND_SECONDS:g} s: is refund's payout gateway running?"
                )
            time.sleep(REFUND_POLL_SECONDS)
            refund = self.call(
                "refund GetRefund",
                self.refunds.GetRefund,
                refund_pb.GetRefundRequest(refund_id=refund.refund_id),
                user.metadata,
            ).refund
            if refund.state != state:
                state = refund.state
                self.say(f"-> {self.refund_state(state)}")
        if refund.instrument_id != user.card_id:
            raise StepFailed(f"the refund went to {refund.instrument_id}, not the card")
        self.say(f"paid back to card {user.card_id}")

    @staticmethod
    def kyc_state(state: kyc_types.VerificationState.ValueType) -> str:
        return kyc_types.VerificationState.Name(state).removeprefix("VERIFICATION_STATE_")

    @staticmethod
    def refund_state(state: refund_types.RefundState.ValueType) -> str:
        return refund_types.RefundState.Name(state).removeprefix("REFUND_STATE_")


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d} {CURRENCY}"


def random_phone() -> str:
    """A phone number for this run: a number registers once, and the stack keeps its data."""
    return f"+8613800{secrets.randbelow(1_000_000):06d}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__)
    parser.add_argument(
        "--phone", default=None, help="register this E.164 number (default: a fresh one)"
    )
    args = parser.parse_args(argv)
    environ = os.environ
    demo = Demo(Stack(environ), DevelopmentInbox(inbox_path(environ)), args.phone or random_phone())
    try:
        demo.run()
    except StepFailed as failed:
        print(f"demo: step {demo.number} ({demo.title}) failed: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
