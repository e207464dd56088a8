"""Throwaway certificates and a TLS-terminating gRPC proxy, for clients that must speak TLS.

`issue(tmp_path)` writes a test CA, a server certificate for `localhost` and 127.0.0.1 and a
client certificate, all signed by that CA (EC P-256, valid for a day). `TlsProxy` listens
with TLS on an ephemeral port and forwards every unary call, metadata included, to a
plaintext gRPC server: the ingress or mesh sidecar in front of a service in production.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FORWARD_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def issue(folder: Path, ca_name: str = "walletsec test CA") -> Certificates:
    """A CA and the server and client certificates it signs, as PEM files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, None)
    files: dict[str, Path] = {"ca_file": folder / "ca.pem"}
    files["ca_file"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"test {role}", key, (ca.subject, ca_key), usage=usage)
        files[f"{role}_cert_file"] = folder / f"{role}.pem"
        files[f"{role}_key_file"] = folder / f"{role}-key.pem"
        files[f"{role}_cert_file"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key_file"].write_bytes(_pem_key(key))
    return Certificates(**files)


class _Forward(grpc.GenericRpcHandler):
    """Every method, as raw bytes, to the same method on `channel`."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(
            handler_call_details.method
        )

        async def forward(request: bytes, context: Any) -> bytes:
            metadata = [(k, v) for k, v in context.invocation_metadata() if not k.startswith(":")]
            try:
                return bytes(
                    await call(request, metadata=metadata, timeout=FORWARD_TIMEOUT_SECONDS)
                )
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details(), error.trailing_metadata())
                raise

        return grpc.unary_unary_rpc_method_handler(forward)


class TlsProxy:
    """`async with TlsProxy(certificates, "127.0.0.1:50052") as proxy:` serves TLS on
    `proxy.port`; with `require_client_certificate` only clients the CA signed get through."""

    def __init__(
        self, certificates: Certificates, target: str, *, require_client_certificate: bool = False
    ) -> None:
        self._certificates = certificates
        self._target = target
        self._require_client = require_client_certificate
        self.port = 0

    async def __aenter__(self) -> Self:
        certs = self._certificates
        self._channel = grpc.aio.insecure_channel(self._target)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Forward(self._channel),))
        credentials = grpc.ssl_server_credentials(
            [(certs.server_key_file.read_bytes(), certs.server_cert_file.read_bytes())],
            root_certificates=certs.ca_file.read_bytes() if self._require_client else None,
            require_client_auth=self._require_client,
        )
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        await self._server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._server.stop(None)
        await self._channel.close()
