"""The bootstrap on real ports: health, reflection, metrics, request ids, separate surfaces."""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio
import httpx
import pytest
from google.protobuf import empty_pb2, wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.api.walletcore.probe import (
    ADMIN_PROBE,
    OFFICER,
    PROBE,
    FakeLimiter,
    FakeVerifier,
    ProbeServicer,
    StartServer,
    admin_probe_service,
    method,
    probe_service,
    probe_settings,
)
from walletcore.grpc.access import PUBLIC, require_roles, service_policy
from walletcore.grpc.server import (
    BackgroundTask,
    BackgroundTaskFailed,
    Port,
    PortKind,
    ServiceServer,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def public_port(servicer: ProbeServicer) -> Port:
    return Port(
        PortKind.PUBLIC,
        [probe_service(servicer)],
        service_policy(PROBE, {"WhoAmI": PUBLIC, "RequestId": PUBLIC, "Slow": PUBLIC}),
    )


def admin_port(servicer: ProbeServicer) -> Port:
    return Port(
        PortKind.ADMIN,
        [admin_probe_service(servicer)],
        service_policy(ADMIN_PROBE, {"Freeze": require_roles("security_officer")}),
        verifier=FakeVerifier({"officer": OFFICER}),
    )


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return int(response.status)


async def listed_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in stub.ServerReflectionInfo(iter([request])):
        return {service.name for service in response.list_services_response.service}
    raise AssertionError("reflection answered nothing")


async def test_health_is_serving_overall_and_per_service(start_server: StartServer) -> None:
    servicer = ProbeServicer()
    async with (
        start_server([public_port(servicer)]) as running,
        running.client() as client,
    ):
        assert await health_of(client.channel) == SERVING
        assert await health_of(client.channel, PROBE) == SERVING


async def test_health_turns_not_serving_when_shutdown_begins(start_server: StartServer) -> None:
    servicer = ProbeServicer()
    async with (
        start_server([public_port(servicer)]) as running,
        running.client() as client,
    ):
        watch = health_pb2_grpc.HealthStub(client.channel).Watch(
            health_pb2.HealthCheckRequest(service=PROBE)
        )
        assert (await watch.read()).status == SERVING

        stopping = asyncio.create_task(running.server.stop(grace=5))
        assert (await watch.read()).status == NOT_SERVING

        watch.cancel()
        await stopping


async def test_reflection_lists_the_port_services_when_on(start_server: StartServer) -> None:
    servicer = ProbeServicer()
    async with (
        start_server([public_port(servicer), admin_port(servicer)], reflection=True) as running,
        running.client("public") as public,
        running.client("admin") as admin,
    ):
        public_services = await listed_services(public.channel)
        admin_services = await listed_services(admin.channel)

    assert PROBE in public_services
    assert ADMIN_PROBE not in public_services
    assert ADMIN_PROBE in admin_services
    assert "grpc.health.v1.Health" in public_services


async def test_reflection_is_absent_when_off(start_server: StartServer) -> None:
    async with (
        start_server([public_port(ProbeServicer())], reflection=False) as running,
        running.client() as client,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await listed_services(client.channel)

    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_metrics_count_rpcs_by_method_and_code(start_server: StartServer) -> None:
    async with (
        start_server([public_port(ProbeServicer())]) as running,
        running.client() as client,
    ):
        await client.unary(method(PROBE, "WhoAmI"))(wrappers_pb2.StringValue())
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{running.ports['metrics']}/metrics")

    assert response.status_code == 200
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="WhoAmI",'
        'grpc_service="test.v1.Probe"} 1.0'
    ) in response.text
    assert "grpc_server_handling_seconds_bucket" in response.text


async def test_a_given_request_id_is_used_and_echoed(start_server: StartServer) -> None:
    async with (
        start_server([public_port(ProbeServicer())]) as running,
        running.client() as client,
    ):
        call = client.unary(method(PROBE, "RequestId"))(
            empty_pb2.Empty(), metadata=(("x-request-id", "req-42"),)
        )
        seen_by_handler = (await call).value
        echoed = dict(await call.trailing_metadata() or ())

    assert seen_by_handler == "req-42"
    assert echoed["x-request-id"] == "req-42"


async def test_a_request_id_is_generated_when_missing_or_unsafe(
    start_server: StartServer,
) -> None:
    async with (
        start_server([public_port(ProbeServicer())]) as running,
        running.client() as client,
    ):
        plain = client.unary(method(PROBE, "RequestId"))(empty_pb2.Empty())
        unsafe = client.unary(method(PROBE, "RequestId"))(
            empty_pb2.Empty(), metadata=(("x-request-id", "alice@example.com {forged}"),)
        )
        ids = [(await call).value for call in (plain, unsafe)]
        echoed = [
            dict(await call.trailing_metadata() or ())["x-request-id"] for call in (plain, unsafe)
        ]

    assert ids == echoed
    assert all(len(request_id) == 32 for request_id in ids)
    assert ids[0] != ids[1]


async def test_ports_are_separate_surfaces(start_server: StartServer) -> None:
    servicer = ProbeServicer()
    async with (
        start_server([public_port(servicer), admin_port(servicer)]) as running,
        running.client("public") as public,
        running.client("admin") as admin,
    ):
        freeze = method(ADMIN_PROBE, "Freeze")
        with pytest.raises(grpc.aio.AioRpcError) as on_public:
            await public.unary(freeze)(wrappers_pb2.StringValue())
        answer = await admin.unary(freeze)(
            wrappers_pb2.StringValue(), metadata=(("authorization", "Bearer officer"),)
        )

    assert running.ports["public"] != running.ports["admin"]
    assert on_public.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert answer.value == "operator:op-1"


def test_a_policy_for_a_service_the_port_does_not_serve_is_refused() -> None:
    servicer = ProbeServicer()
    misrouted = Port(
        PortKind.PUBLIC,
        [probe_service(servicer)],
        service_policy(ADMIN_PROBE, {"Freeze": PUBLIC}),
    )

    with pytest.raises(ValueError, match=ADMIN_PROBE):
        ServiceServer(probe_settings(), [misrouted], FakeLimiter(), logging.getLogger("probe"))


async def test_background_tasks_run_with_the_server_and_are_cancelled_on_stop(
    start_server: StartServer,
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def dispatcher() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with start_server(
        [public_port(ProbeServicer())], background_tasks=[BackgroundTask("outbox", dispatcher)]
    ):
        await started.wait()
        assert not cancelled.is_set()

    assert cancelled.is_set()


async def test_a_failed_background_task_stops_the_server_with_an_error() -> None:
    async def broken_dispatcher() -> None:
        raise RuntimeError("lost the database")

    server = ServiceServer(
        probe_settings(),
        [public_port(ProbeServicer())],
        FakeLimiter(),
        logging.getLogger("probe"),
        [BackgroundTask("outbox", broken_dispatcher)],
    )

    with pytest.raises(BackgroundTaskFailed, match="outbox"):
        await server.run_until_signal()


async def test_messages_over_the_receive_limit_are_refused(start_server: StartServer) -> None:
    async with (
        start_server([public_port(ProbeServicer())], max_receive_message_bytes=1024) as running,
        running.client() as client,
    ):
        who_am_i = client.unary(method(PROBE, "WhoAmI"))
        small = await who_am_i(wrappers_pb2.StringValue(value="x" * 512))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await who_am_i(wrappers_pb2.StringValue(value="x" * 2048))

    assert small.value == "anonymous:"
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_two_processes_share_a_port_only_when_both_ask_to(start_server: StartServer) -> None:
    """REUSE_PORT (scaling out on one host): a second server binds the first's port when both
    set it, and both serve; one that does not set it fails to start instead of sharing."""
    servicer = ProbeServicer()
    async with start_server([public_port(servicer)], reuse_port=True) as first:
        port = first.ports["public"]
        async with start_server(
            [public_port(servicer)], reuse_port=True, public_port=port
        ) as second:
            assert second.ports["public"] == port
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert await health_of(channel) == SERVING
        with pytest.raises(RuntimeError):
            async with start_server([public_port(servicer)], public_port=port):
                pass
