"""The public AuthService: the access and recovery RPCs composed into one servicer.

`AccessRpcs` (registration, sign-in, sessions, account, contacts, timeline) and `RecoveryRpcs`
(credential reset, TOTP, step-up, self-freeze) are written apart and share the servicer's
`ctx` and `tx` (the account read uses its `reads`). They come before the generated base
class, so their methods replace its UNIMPLEMENTED stubs; `unimplemented_rpcs()` names any
RPC neither provides.
"""

from __future__ import annotations

from services.auth.api.access import AccessRpcs
from services.auth.api.recovery import RecoveryRpcs
from services.auth.service.context import AuthContext
from services.auth.service.ports import AccountReads, Transactions
from wallet.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

SERVICE_NAME = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(AccessRpcs, RecoveryRpcs, auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(self, ctx: AuthContext, tx: Transactions, reads: AccountReads) -> None:
        self.ctx = ctx
        self.tx = tx
        self.reads = reads


def unimplemented_rpcs() -> list[str]:
    """The RPCs of AuthService that would still answer UNIMPLEMENTED."""
    generated = auth_service_pb2_grpc.AuthServiceServicer
    methods = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].methods
    return [
        method.name
        for method in methods
        if getattr(AuthServicer, method.name) is getattr(generated, method.name)
    ]
