"""How walletsec reaches the admin APIs: the operator identity, the addresses, and turning a
refusal into the one line (and exit status) an operator reads instead of a traceback."""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import grpc
from pydantic import ValidationError

from services.__main__ import HOST, STACK
from walletcore.grpc.clients import InternalTargetOptions
from walletcore.grpc.status import error_details
from walletcore.validation import COMPACT_JWS

# The names of the variables, not secrets.
TOKEN_ENV: Final = "WALLETSEC_OPERATOR_TOKEN"  # noqa: S105 (a variable name, not a token)
TOKEN_FILE_ENV: Final = "WALLETSEC_OPERATOR_TOKEN_FILE"  # noqa: S105 (a variable name)
CA_FILE_ENV: Final = "WALLETSEC_CA_FILE"
CERT_FILE_ENV: Final = "WALLETSEC_CERT_FILE"
KEY_FILE_ENV: Final = "WALLETSEC_KEY_FILE"
SERVER_NAME_ENV: Final = "WALLETSEC_SERVER_NAME"
ALLOW_INSECURE_ENV: Final = "WALLETSEC_ALLOW_INSECURE"
RPC_TIMEOUT_SECONDS: Final = 30.0
MAX_RECEIVE_BYTES: Final = 16 * 1024 * 1024
"""KYC's GetCase returns up to three 5 MiB images (kyc_review_service.proto)."""

_R = TypeVar("_R")


class ExitCode(enum.IntEnum):
    """The exit statuses, documented in the README for scripts."""

    FAILED = 1
    """The operation ran and did not succeed (a broken audit chain, a failed bulk batch, ...)."""
    BAD_INPUT = 2
    UNREACHABLE = 3
    DENIED = 4
    """No, malformed, expired or wrong-role operator identity."""
    NOT_FOUND = 5
    INTERRUPTED = 130


class CliError(Exception):
    """A failure as the one line the operator reads, and the exit status."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


def default_admin_addresses() -> dict[str, str]:
    """The embedded stack's admin ports (services/__main__.py), by service name."""
    return {member.name: f"{HOST}:{member.default_ports()['ADMIN']}" for member in STACK}


def address_env(service: str) -> str:
    return f"WALLETSEC_{service.upper()}_ADMIN"


def admin_addresses(environ: Mapping[str, str]) -> dict[str, str]:
    """`WALLETSEC_<SERVICE>_ADMIN` where set, else the embedded stack's default."""
    return {
        service: environ.get(address_env(service)) or default
        for service, default in default_admin_addresses().items()
    }


def read_operator_token(token_file: Path | None, environ: Mapping[str, str]) -> str:
    """The operator token: from `token_file` (the option, or WALLETSEC_OPERATOR_TOKEN_FILE),
    else WALLETSEC_OPERATOR_TOKEN. Never a command-line value: other users of the machine
    could read it from the process list."""
    if token_file is None and environ.get(TOKEN_FILE_ENV):
        token_file = Path(environ[TOKEN_FILE_ENV])
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise CliError(
                f"cannot read the operator token file {token_file}: {reason}", ExitCode.DENIED
            ) from None
        source = f"the operator token file {token_file}"
    else:
        token = environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise CliError(
                f"no operator identity: set {TOKEN_ENV} or pass --token-file", ExitCode.DENIED
            )
        source = TOKEN_ENV
    # Checked here so that a file holding something else (a key, a stray line) is named as
    # the problem rather than refused by the server as an unknown caller.
    if not COMPACT_JWS.matches(token):
        raise CliError(f"{source} does not hold an operator token", ExitCode.DENIED)
    return token


@dataclass(frozen=True)
class Transport:
    """TLS for the admin channels (`WALLETSEC_CA_FILE`, with `WALLETSEC_CERT_FILE` and
    `WALLETSEC_KEY_FILE` for mutual TLS, `WALLETSEC_SERVER_NAME` when the certificate names
    another host), or plaintext, which carries the operator token readable on the wire and is
    therefore only for loopback addresses unless `WALLETSEC_ALLOW_INSECURE=true` says the
    network is protected otherwise (a `kubectl port-forward` is loopback too)."""

    credentials: grpc.ChannelCredentials | None = None
    server_name: str | None = None
    allow_insecure: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Transport:
        def path(name: str) -> Path | None:
            return Path(environ[name]) if environ.get(name) else None

        try:
            options = InternalTargetOptions(
                ca_file=path(CA_FILE_ENV),
                cert_file=path(CERT_FILE_ENV),
                key_file=path(KEY_FILE_ENV),
                server_name=environ.get(SERVER_NAME_ENV) or None,
            )
            credentials = options.credentials()
        except ValidationError:
            raise CliError(
                f"{CERT_FILE_ENV} and {KEY_FILE_ENV} go together, and need {CA_FILE_ENV}",
                ExitCode.BAD_INPUT,
            ) from None
        except OSError as error:
            raise CliError(
                f"cannot read the TLS file {error.filename}: {error.strerror}", ExitCode.BAD_INPUT
            ) from None
        allow = environ.get(ALLOW_INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")
        return cls(credentials, options.server_name, allow)

    def open(self, address: str) -> grpc.Channel:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)
        ]
        if self.credentials is not None:
            if self.server_name:
                options.append(("grpc.ssl_target_name_override", self.server_name))
            return grpc.secure_channel(address, self.credentials, options=options)
        if not (self.allow_insecure or is_loopback(address)):
            raise CliError(
                f"{address} is not a loopback address: set {CA_FILE_ENV} for TLS (or "
                f"{ALLOW_INSECURE_ENV}=true where the network protects the operator token)",
                ExitCode.BAD_INPUT,
            )
        return grpc.insecure_channel(address, options=options)


def is_loopback(address: str) -> bool:
    """`127.0.0.1:50052`, `[::1]:50052` or `localhost:50052`."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Connection:
    """Channels to the admin ports, opened on first use, and calls that fail as CliError."""

    token: str
    addresses: Mapping[str, str]
    transport: Transport = field(default_factory=Transport)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            self._channels[service] = self.transport.open(self.addresses[service])
        return self._channels[service]

    def call(
        self,
        service: str,
        method: Callable[..., _R],
        request: object,
        timeout: float = RPC_TIMEOUT_SECONDS,
    ) -> _R:
        """`method(request)` with the operator's credentials; a refusal raises CliError."""
        try:
            return method(
                request,
                metadata=(("authorization", f"Bearer {self.token}"),),
                timeout=timeout,
            )
        except grpc.RpcError as error:
            failure = rpc_failure(service, self.addresses[service], error, timeout)
            if failure.code == grpc.StatusCode.UNAVAILABLE and self.transport.credentials:
                # A refused handshake looks the same as a server that is down.
                failure = RpcFailure(
                    f"{failure}, and that {CA_FILE_ENV} signs its certificate",
                    failure.exit_code,
                    failure.code,
                )
            raise failure from None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


class RpcFailure(CliError):
    """A refused call, keeping its status code for callers that retry (the bulk freeze)."""

    def __init__(
        self,
        message: str,
        exit_code: ExitCode,
        code: grpc.StatusCode,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, exit_code)
        self.code = code
        self.retry_after = retry_after


def rpc_failure(
    service: str, address: str, error: grpc.RpcError, timeout: float = RPC_TIMEOUT_SECONDS
) -> RpcFailure:
    """The one line for a failed call. The server's message is written for clients (it never
    holds secrets); the address is the operator's own setting."""
    details = error_details(error)
    code = details.code
    name = code.name
    said = details.message or name.lower()
    if code == grpc.StatusCode.UNAVAILABLE:
        return RpcFailure(
            f"{service} admin API at {address} cannot be reached (UNAVAILABLE): is it running? "
            f"Set {address_env(service)} to its address",
            ExitCode.UNREACHABLE,
            code,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RpcFailure(
            f"{service} admin API at {address} did not answer within "
            f"{timeout:g} s (DEADLINE_EXCEEDED)",
            ExitCode.UNREACHABLE,
            code,
        )
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return RpcFailure(
            f"{service} refused the operator identity ({name}): {said}", ExitCode.DENIED, code
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        fields = "; ".join(f"{v.field}: {v.description}" for v in details.field_violations)
        return RpcFailure(
            f"{service} refused the request (INVALID_ARGUMENT): {fields or said}",
            ExitCode.BAD_INPUT,
            code,
        )
    reason = f"/{details.reason}" if details.reason else ""
    exit_code = ExitCode.NOT_FOUND if code == grpc.StatusCode.NOT_FOUND else ExitCode.FAILED
    return RpcFailure(
        f"{service} refused the request ({name}{reason}): {said}",
        exit_code,
        code,
        details.retry_after,
    )


def environ() -> Mapping[str, str]:
    """The process environment, read when a command runs (tests set it per invocation)."""
    return os.environ
