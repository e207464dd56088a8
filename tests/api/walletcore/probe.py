"""A probe service for the server tests, fakes of the verifier and limiter protocols, a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.protobuf import empty_pb2, wrappers_pb2
from pydantic_settings import SettingsConfigDict

from walletcore.errors import DomainError, Unauthenticated
from walletcore.grpc.server import Service, ServiceServer
from walletcore.identity import Caller, CallerKind, current_caller
from walletcore.logging import current_request_id
from walletcore.ratelimit.base import Decision, Hit
from walletcore.settings import ServiceSettings

PROBE = "test.v1.Probe"
ADMIN_PROBE = "test.v1.AdminProbe"


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_TEST_")

    service_name: str = "probe"


def probe_settings(**values: Any) -> ProbeSettings:
    return ProbeSettings(**values)


USER = Caller(kind=CallerKind.USER, subject="acct-1", session_id="s-1")
OFFICER = Caller(kind=CallerKind.OPERATOR, subject="op-1", roles=frozenset({"security_officer"}))
REVIEWER = Caller(kind=CallerKind.OPERATOR, subject="op-2", roles=frozenset({"kyc_reviewer"}))


class FakeVerifier:
    """Accepts the tokens it was given, refuses anything else as the real ones do."""

    def __init__(self, callers: dict[str, Caller]) -> None:
        self._callers = callers

    async def verify(self, token: str) -> Caller:
        if token not in self._callers:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
        return self._callers[token]


@dataclass
class FakeLimiter:
    """Records every check; answers with `decision`, or raises `failure`."""

    decision: Decision = field(default_factory=lambda: Decision(allowed=True))
    failure: Exception | None = None
    checks: list[tuple[Hit, ...]] = field(default_factory=list)

    async def check(self, hits: Sequence[Hit]) -> Decision:
        self.checks.append(tuple(hits))
        if self.failure is not None:
            raise self.failure
        return self.decision

    async def close(self) -> None:
        return None


@dataclass
class ProbeServicer:
    """Handlers written the way services write them: async, raising domain errors."""

    error: DomainError | Exception | None = None
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def whoami(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        if self.error is not None:
            raise self.error
        caller = current_caller()
        return wrappers_pb2.StringValue(value=f"{caller.kind}:{caller.subject}")

    async def request_id(self, request: empty_pb2.Empty, context: Any) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value=current_request_id() or "")

    async def count(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> AsyncIterator[wrappers_pb2.StringValue]:
        for number in range(3):
            yield wrappers_pb2.StringValue(value=f"{request.value}-{number}")
        if self.error is not None:
            raise self.error

    async def slow(self, request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
        self.slow_started.set()
        await self.release_slow.wait()
        return empty_pb2.Empty()


def _unary(behaviour: Callable[..., Any], request_type: Any) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def probe_service(servicer: ProbeServicer) -> Service:
    handlers = {
        "WhoAmI": _unary(servicer.whoami, wrappers_pb2.StringValue),
        "Limited": _unary(servicer.whoami, wrappers_pb2.StringValue),
        "Unlisted": _unary(servicer.whoami, wrappers_pb2.StringValue),
        "RequestId": _unary(servicer.request_id, empty_pb2.Empty),
        "Slow": _unary(servicer.slow, empty_pb2.Empty),
        "Count": grpc.unary_stream_rpc_method_handler(
            servicer.count,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        ),
    }
    return _service(PROBE, handlers)


def admin_probe_service(servicer: ProbeServicer) -> Service:
    return _service(ADMIN_PROBE, {"Freeze": _unary(servicer.whoami, wrappers_pb2.StringValue)})


def _service(name: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> Service:
    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(name, handlers)])

    return Service(name, register)


def method(service: str, name: str) -> str:
    return f"/{service}/{name}"


class Client:
    """Calls methods by name over one channel, the way generated stubs do."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    def unary(
        self, full_method: str, response_type: Any = wrappers_pb2.StringValue
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return self.channel.unary_unary(
            full_method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )

    def stream(self, full_method: str) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        return self.channel.unary_stream(
            full_method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )


@dataclass
class Running:
    server: ServiceServer
    ports: dict[str, int]
    host: str = "127.0.0.1"

    @asynccontextmanager
    async def client(self, port: str = "public") -> AsyncIterator[Client]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        async with grpc.aio.insecure_channel(f"{host}:{self.ports[port]}") as channel:
            yield Client(channel)


StartServer = Callable[..., AbstractAsyncContextManager[Running]]
