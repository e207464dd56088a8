"""Key and development-token tool.

    python -m walletcore.keytool new-encryption-key [--kid KID]
    python -m walletcore.keytool new-signing-key [--kid KID]
    python -m walletcore.keytool public-jwks [--signing-keys-env VAR]
    python -m walletcore.keytool operator-token --operator-id ID --role ROLE [--ttl-minutes N]
    python -m walletcore.keytool service-token --service NAME --audience NAME [--ttl-minutes N]

`new-*-key` prints one fresh `kid:base64url` entry: prepend it to a key spec to rotate (an
encryption key also serves HMAC rings: blind indexes and secret hashes). `public-jwks` prints
the public JWKS (a JSON list) of a signing key spec, every key active first: the value of
`AUTH_IDENTITY_KEYS_JWKS` for the identity provider's spec. The token commands
print a token signed with the development identity ring, or with the spec held in the
environment variable named by `--signing-keys-env`; a secret never goes on the command line,
where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from walletcore.identity import OperatorRole
from walletcore.keys import format_key_spec, generate_key
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    SigningKeyRing,
    TokenIssuer,
)


def _default_kid() -> str:
    return datetime.now(UTC).strftime("k%Y%m%d%H%M%S")


def _signing_ring(env_name: str | None) -> SigningKeyRing:
    if env_name is None:
        return SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
    spec = os.environ.get(env_name)
    if not spec:
        raise ValueError(f"the environment variable {env_name} holds no key spec")
    return SigningKeyRing.from_spec(spec)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m walletcore.keytool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("new-encryption-key", "new-signing-key"):
        command = commands.add_parser(name, help="print a fresh 256-bit key spec entry")
        command.add_argument("--kid", default=None, help="key id (default: k<UTC timestamp>)")
    jwks = commands.add_parser(
        "public-jwks", help="print the public JWKS of a signing key spec (AUTH_IDENTITY_KEYS_JWKS)"
    )
    operator = commands.add_parser("operator-token", help="mint a development operator token")
    operator.add_argument("--operator-id", required=True)
    operator.add_argument("--role", required=True, choices=[role.value for role in OperatorRole])
    service = commands.add_parser("service-token", help="mint a development service token")
    service.add_argument("--service", required=True, help="the calling service")
    service.add_argument("--audience", required=True, help="the service being called")
    for command in (operator, service):
        command.add_argument("--ttl-minutes", type=int, default=60)
        command.add_argument("--issuer", default=DEVELOPMENT_IDENTITY_ISSUER)
    for command in (jwks, operator, service):
        command.add_argument(
            "--signing-keys-env",
            default=None,
            metavar="VAR",
            help="environment variable holding the signing key spec (default: development keys)",
        )
    return parser


def run(argv: Sequence[str]) -> str:
    """The text the command prints; raises ValueError for unusable arguments."""
    args = _parser().parse_args(argv)
    if args.command in ("new-encryption-key", "new-signing-key"):
        return format_key_spec([generate_key(args.kid or _default_kid())])
    if args.command == "public-jwks":
        return json.dumps(_signing_ring(args.signing_keys_env).public_jwks())
    issuer = TokenIssuer(args.issuer, _signing_ring(args.signing_keys_env))
    ttl = timedelta(minutes=args.ttl_minutes)
    if args.command == "operator-token":
        issued = issuer.operator_token(operator_id=args.operator_id, role=args.role, ttl=ttl)
    else:
        issued = issuer.service_token(service=args.service, audience=args.audience, ttl=ttl)
    return issued.token


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except ValueError as error:
        print(f"keytool: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
