"""Every RPC of binding's three ports refuses every credential it must not accept (no token,
garbage, expired, another key's, `alg: none`, a user's on the admin and internal ports, an
operator of the wrong role, a service that is not refund) with UNAUTHENTICATED or
PERMISSION_DENIED and no reply, while the admitted caller gets past (the matrix printed).
UnbindCard takes only auth's grant for that account, that purpose and that card: forged,
unsigned, expired and misdirected grants are refused and leave the card bound."""

from __future__ import annotations

from collections import Counter

import grpc

from tests.api.auth.recovery_helpers import refused
from tests.api.binding.conftest import BindingTestApp
from tests.api.binding.test_binding_api import OTHER_CARD, UNBIND, bind, unbind
from tests.support.access_matrix import (
    AUTH_RING,
    REFUSALS,
    STRANGER_RING,
    Caller,
    Issuers,
    MatrixPort,
    run_matrix,
    summary,
    without_signature,
)
from tests.support.channels import port_channels
from wallet.binding.v1 import binding_admin_service_pb2 as admin_pb
from wallet.binding.v1 import binding_query_service_pb2 as query_pb
from wallet.binding.v1 import binding_service_pb2 as pb
from wallet.binding.v1 import types_pb2
from walletcore.identity import OperatorRole
from walletcore.tokens import TokenIssuer, TokenKind

GRANT_LIFETIME = TokenKind.STEP_UP_GRANT.max_lifetime


async def test_every_rpc_refuses_every_credential_it_must_not_accept(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    async with port_channels(binding_app.ports) as channels:
        ports = [
            MatrixPort(
                "public",
                channels["public"],
                pb.DESCRIPTOR.services_by_name["BindingService"],
                Caller.USER,
                "binding",
                holder.metadata,
            ),
            MatrixPort(
                "admin",
                channels["admin"],
                admin_pb.DESCRIPTOR.services_by_name["BindingAdminService"],
                Caller.OPERATOR,
                "binding",
                holder.metadata,
                default=frozenset({OperatorRole.SECURITY_OFFICER.value}),
            ),
            MatrixPort(
                "internal",
                channels["internal"],
                query_pb.DESCRIPTOR.services_by_name["BindingQueryService"],
                Caller.SERVICE,
                "binding",
                holder.metadata,
                default=frozenset({"refund"}),
            ),
        ]

        counts = await run_matrix(ports, Issuers(binding_app.auth.settings.issuer))

    print(summary("binding", counts))
    assert counts["no token"] == sum(len(port.service.methods) for port in ports)


async def test_unbind_refuses_every_grant_but_auths_for_that_card(
    binding_app: BindingTestApp,
) -> None:
    holder = await binding_app.new_holder()
    stranger = await binding_app.new_holder()
    card = await bind(binding_app, holder)
    other_card = await bind(binding_app, holder, OTHER_CARD)
    real = await binding_app.grant(holder, UNBIND, card.card_id)
    auth = TokenIssuer(binding_app.auth.settings.issuer, AUTH_RING)
    forger = TokenIssuer(binding_app.auth.settings.issuer, STRANGER_RING)
    expired = TokenIssuer(
        binding_app.auth.settings.issuer,
        AUTH_RING,
        clock=lambda: binding_app.auth.app.ctx.clock() - 3 * GRANT_LIFETIME,
    )

    def signed(
        issuer: TokenIssuer,
        *,
        account_id: str = holder.account_id,
        purpose: str = "UNBIND_CARD",
        object_id: str = card.card_id,
    ) -> str:
        grant = issuer.step_up_grant(
            account_id=account_id, purpose=purpose, object_id=object_id or None
        )
        return grant.token

    grants = {
        "forged (another key)": signed(forger),
        "alg none": without_signature(real),
        "expired": signed(expired),
        "another purpose": signed(auth, purpose="CHANGE_PHONE"),
        "another card": signed(auth, object_id=other_card.card_id),
        "no card": signed(auth, object_id=""),
        "another account's": signed(auth, account_id=stranger.account_id),
        "an access token": holder.metadata[0][1].removeprefix("Bearer "),
        "garbage": "e30.e30.e30",
    }
    counts: Counter[str] = Counter()
    for name, grant in grants.items():
        error = await refused(unbind(binding_app, holder, card.card_id, grant))
        assert error.code in REFUSALS, f"{name}: {error.code.name} {error.reason}"
        counts[name] += 1
    # The holder's real grant, with another user's token: that card is not theirs to see.
    theirs = await refused(
        binding_app.public.UnbindCard(
            pb.UnbindCardRequest(request_id="r-stranger", card_id=card.card_id, grant=real),
            metadata=stranger.metadata,
        )
    )
    still = await binding_app.public.ListCards(pb.ListCardsRequest(), metadata=holder.metadata)
    unbound = await unbind(binding_app, holder, card.card_id, real)

    print(summary("binding UnbindCard grants", counts))
    assert (theirs.code, theirs.reason) == (grpc.StatusCode.NOT_FOUND, "CARD_NOT_FOUND")
    assert card.card_id in {c.card_id for c in still.cards}
    assert unbound.card.status == types_pb2.CARD_STATUS_UNBOUND
