"""The server's per-call pipeline, one interceptor per concern, outermost first:

1. `RequestContextInterceptor`: request id (taken from `x-request-id` or generated, echoed in
   the trailing metadata, put in the log context), the client address, one log line and the
   Prometheus observations per RPC.
2. `ErrorMappingInterceptor`: a DomainError becomes its rich status (walletcore.grpc.status),
   a lost database connection (`walletcore.db.connection_lost`) UNAVAILABLE; anything else is
   logged with its trace and becomes INTERNAL "internal error".
3. `AuthenticationInterceptor`: the port's verifier and deny-by-default access policy; the
   Caller is set for the handler (walletcore.identity.current_caller).
4. `RateLimitInterceptor`: all of a method's rate rules in one `RateLimiter.check`.

grpc.aio interceptors only see the method name and metadata, so each one wraps the handler's
behaviour instead: its `guard` runs around the call and sees the request message (for methods
with a streamed request, which has no single message, it sees None).
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import inspect
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

import grpc
import grpc.aio

from walletcore.db import connection_lost
from walletcore.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from walletcore.grpc.access import AccessPolicy, rule_for
from walletcore.grpc.status import status_code_of, to_grpc_status
from walletcore.identity import (
    ANONYMOUS,
    Caller,
    CallerKind,
    CredentialVerifier,
    current_caller,
    reset_current_caller,
    set_current_caller,
)
from walletcore.logging import reset_request_id, set_request_id
from walletcore.metrics import RpcMetrics
from walletcore.ratelimit.base import Hit, Policy, RateLimiter
from walletcore.ratelimit.enforce import enforce

REQUEST_ID_KEY: Final = "x-request-id"
INTERNAL_ERROR_MESSAGE: Final = "internal error"
UNKNOWN_ADDRESS: Final = "unknown"

# A client-chosen request id is logged, so only a short, plain token is accepted.
_REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SERVER_FAULTS: Final = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
# Probes call these every few seconds; their lines would drown the real traffic.
_QUIET_METHOD_PREFIXES: Final = ("/grpc.health.v1.Health/",)

_client_address: contextvars.ContextVar[str] = contextvars.ContextVar(
    "client_address", default=UNKNOWN_ADDRESS
)

# Strings: grpc's classes are generic only in their type stubs.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Guard: TypeAlias = "Callable[[Any, Context], AbstractAsyncContextManager[None]]"
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def current_client_address() -> str:
    """The calling client's IP address, for security events and rate limits."""
    return _client_address.get()


class GuardInterceptor(grpc.aio.ServerInterceptor, abc.ABC):
    """Runs `guard(method, request, context)` around the behaviour of every call."""

    def __init__(self) -> None:
        # method -> (the inner handler, this interceptor's wrapper of it)
        self._wrapped: dict[str, tuple[MethodHandler, MethodHandler]] = {}

    @abc.abstractmethod
    def guard(
        self, method: str, request: Any, context: Context
    ) -> AbstractAsyncContextManager[None]: ...

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        # Wrapped once per method, not per call: building a handler (grpc imports a module in
        # there) and its closures on every call was a tenth of the pipeline's Python time. The
        # inner handler is the same object on every call (a registered one, or the next
        # interceptor's cached wrapper); one that changes is wrapped anew. Only methods the
        # server serves get here, so this holds one entry per served method.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]

        def guard(request: Any, context: Context) -> AbstractAsyncContextManager[None]:
            return self.guard(method, request, context)

        wrapped = wrap_handler(handler, guard)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class UndecodableRequest:
    """Stands in for a request whose bytes are not the method's request message.

    grpc answers a deserializer's exception with UNKNOWN and the parser's text; the error
    mapping turns this marker into INVALID_ARGUMENT instead, before any handler runs.
    """


UNDECODABLE: Final = UndecodableRequest()


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None or getattr(deserialize, "tolerant", False):
        return deserialize

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            return UNDECODABLE

    tolerant.tolerant = True  # type: ignore[attr-defined]
    return tolerant


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], guard: Guard
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with `guard` entered before its behaviour and left after its status."""
    serializers: dict[str, Any] = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded_unary(handler.unary_unary, guard, request_streaming=False), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded_stream(handler.unary_stream, guard, request_streaming=False), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded_unary(handler.stream_unary, guard, request_streaming=True), **serializers
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _guarded_stream(handler.stream_stream, guard, request_streaming=True), **serializers
        )
    raise TypeError("the method handler has no behaviour")


def _guarded_unary(
    behaviour: Callable[[Any, Any], Any], guard: Guard, *, request_streaming: bool
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def call(request: Any, context: Context) -> Any:
        async with guard(None if request_streaming else request, context):
            response = behaviour(request, context)
            if inspect.isawaitable(response):
                response = await response
            return response

    return call


def _guarded_stream(
    behaviour: Callable[[Any, Any], Any], guard: Guard, *, request_streaming: bool
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def call(request: Any, context: Context) -> AsyncIterator[Any]:
        async with guard(None if request_streaming else request, context):
            responses = behaviour(request, context)
            if hasattr(responses, "__aiter__"):
                async for response in responses:
                    yield response
            else:
                # A coroutine that streams with context.write() and returns nothing.
                await responses

    return call


class RequestContextInterceptor(GuardInterceptor):
    """Request id, client address, one JSON log line and metrics per RPC."""

    def __init__(
        self,
        logger: logging.Logger,
        metrics: RpcMetrics,
        trusted_proxy_header: str | None = None,
    ) -> None:
        super().__init__()
        self._logger = logger
        self._metrics = metrics
        self._trusted_proxy_header = trusted_proxy_header

    @asynccontextmanager
    async def guard(self, method: str, request: Any, context: Context) -> AsyncIterator[None]:
        request_id = _request_id_from(context) or uuid.uuid4().hex
        request_id_token = set_request_id(request_id)
        address_token = _client_address.set(client_address(context, self._trusted_proxy_header))
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        # Trailing, not initial: those go out with the status in the batch that ends the call,
        # where sending initial metadata on its own cost a batch (a write) per call.
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        try:
            yield
            code = context.code() or grpc.StatusCode.OK
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._record(method, code, time.perf_counter() - started)
            _client_address.reset(address_token)
            reset_request_id(request_id_token)

    def _record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self._metrics.observe(method, code, seconds)
        if code in _SERVER_FAULTS:
            level = logging.ERROR
        elif method.startswith(_QUIET_METHOD_PREFIXES):
            level = logging.DEBUG
        else:
            level = logging.INFO
        self._logger.log(
            level,
            "rpc finished",
            extra={
                "grpc_method": method,
                "grpc_code": code.name,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


def _request_id_from(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if (
            key == REQUEST_ID_KEY
            and isinstance(value, str)
            and _REQUEST_ID_PATTERN.fullmatch(value)
        ):
            return value
    return None


def client_address(context: Context, trusted_proxy_header: str | None = None) -> str:
    """The client's IP address: the TCP peer, or with `trusted_proxy_header` (only behind a
    proxy that overwrites that header) the last address in it. Never a header otherwise: a
    client could name any address and escape its per-address limits."""
    if trusted_proxy_header:
        forwarded = _last_forwarded_address(context, trusted_proxy_header)
        if forwarded is not None:
            return forwarded
    return peer_address(context.peer())


def peer_address(peer: str) -> str:
    """`ipv4:10.0.0.1:5000` -> `10.0.0.1`; `ipv6:[::1]:5000` -> `::1`."""
    scheme, _, rest = unquote(peer).partition(":")
    if scheme == "ipv4":
        return rest.rpartition(":")[0] or UNKNOWN_ADDRESS
    if scheme == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or UNKNOWN_ADDRESS
    if scheme == "unix":
        return "unix"
    return UNKNOWN_ADDRESS


def _last_forwarded_address(context: Context, header: str) -> str | None:
    values = [
        value
        for key, value in context.invocation_metadata() or ()
        if key == header and isinstance(value, str)
    ]
    if not values:
        return None
    candidate = values[-1].split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class ErrorMappingInterceptor(GuardInterceptor):
    """Domain errors become rich statuses; anything else INTERNAL with no detail."""

    def __init__(self, domain: str, logger: logging.Logger) -> None:
        super().__init__()
        self._domain = domain
        self._logger = logger

    @asynccontextmanager
    async def guard(self, method: str, request: Any, context: Context) -> AsyncIterator[None]:
        try:
            if isinstance(request, UndecodableRequest):
                raise _malformed_request()
            yield
        except grpc.aio.AbortError:
            raise  # the handler ended the call itself
        except Exception as error:
            if not isinstance(error, DomainError) and connection_lost(error):
                # The database connection went away mid-call (killed, restarted, network): the
                # server rolled the transaction back, or, when the commit itself was cut off,
                # may have committed it; either way the client may retry, and an idempotent
                # RPC retried with the same request_id answers what the first attempt did.
                self._logger.warning("database connection lost in %s", method)
                error = Unavailable("the service is temporarily unavailable; retry later")
            if isinstance(error, DomainError) and status_code_of(error) is not None:
                status = to_grpc_status(error, self._domain)
                # abort() replaces the trailing metadata set so far (the request id) with the
                # status's own details unless both are passed.
                await context.abort(
                    status.code,
                    status.details,
                    (*context.trailing_metadata(), *status.trailing_metadata),
                )
            self._logger.exception("unhandled error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_MESSAGE)


def _malformed_request() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("request", "is not a valid message of this method's request type")],
        "the request could not be decoded",
        reason="MALFORMED_REQUEST",
    )


class AuthenticationInterceptor(GuardInterceptor):
    """Checks the bearer token and the access policy; sets the Caller for the handler.

    `verifier` None means a port without authentication: its policy may only hold PUBLIC
    rules, and a token sent to it is ignored.
    """

    def __init__(self, verifier: CredentialVerifier | None, policy: AccessPolicy) -> None:
        super().__init__()
        if verifier is None and any(rule.authenticated for rule in policy.values()):
            raise ValueError("a port without a verifier can only have PUBLIC methods")
        self._verifier = verifier
        self._policy = policy

    @asynccontextmanager
    async def guard(self, method: str, request: Any, context: Context) -> AsyncIterator[None]:
        rule = rule_for(self._policy, method)
        if rule is None:
            raise PermissionDenied(
                "this method is not open on this port", reason="METHOD_NOT_ALLOWED"
            )
        caller = await self._caller(context, required=rule.authenticated)
        if not rule.admits(caller):
            if caller.kind is CallerKind.ANONYMOUS:
                raise Unauthenticated("this method needs a bearer token", reason="TOKEN_MISSING")
            raise PermissionDenied(
                "the caller lacks the role this method needs", reason="ROLE_REQUIRED"
            )
        caller_token = set_current_caller(caller)
        try:
            yield
        finally:
            reset_current_caller(caller_token)

    async def _caller(self, context: Context, *, required: bool) -> Caller:
        token = bearer_token(context.invocation_metadata() or ())
        if token is None or self._verifier is None:
            return ANONYMOUS
        try:
            return await self._verifier.verify(token)
        except (Unauthenticated, PermissionDenied):
            # A public method needs no token, so a stale one (an app refreshing its session
            # with its expired access token attached) grants nothing and refuses nothing.
            if required:
                raise
            return ANONYMOUS


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of `authorization: Bearer <token>`; None when absent.

    Raises Unauthenticated for another scheme, an empty token or several headers.
    """
    values = [value for key, value in metadata if key == "authorization"]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise Unauthenticated("send exactly one authorization header", reason="TOKEN_MALFORMED")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
    return token.strip()


Subject = Callable[[Any, Caller, str], str | None]
"""(request message or None, caller, client address) -> the subject a limit counts, or None
when the rule does not apply to this call."""


@dataclass(frozen=True, slots=True)
class RateRule:
    policy: Policy
    subject: Subject


def by_client_address(request: Any, caller: Caller, address: str) -> str | None:
    return address


def by_caller(request: Any, caller: Caller, address: str) -> str | None:
    """The authenticated caller; does not apply to anonymous calls."""
    if caller.kind is CallerKind.ANONYMOUS:
        return None
    return f"{caller.kind.value}:{caller.subject}"


RateRules = Mapping[str, Sequence[RateRule]]
"""Full method name -> the rules every call of it is charged against."""


class RateLimitInterceptor(GuardInterceptor):
    """Charges a call against all its method's rules in one atomic limiter check.

    Runs after authentication (rules may count per caller) and inside the request context
    (rules may count per client address). The limiter's Unavailable passes on as UNAVAILABLE:
    limited methods fail closed when the limiter's store cannot be reached.
    """

    def __init__(self, limiter: RateLimiter, rules: RateRules) -> None:
        super().__init__()
        self._limiter = limiter
        self._rules = rules

    @asynccontextmanager
    async def guard(self, method: str, request: Any, context: Context) -> AsyncIterator[None]:
        await enforce(self._limiter, self._hits(method, request))
        yield

    def _hits(self, method: str, request: Any) -> list[Hit]:
        caller, address = current_caller(), current_client_address()
        hits = []
        for rule in self._rules.get(method, ()):
            subject = rule.subject(request, caller, address)
            if subject is not None:
                hits.append(Hit(rule.policy, subject))
        return hits
