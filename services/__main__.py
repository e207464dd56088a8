"""`python -m services`: the embedded stack, every service in its own process on this machine.

Each service keeps its own SQLite file under `var/` and the in-process rate limiter (or Redis
when REDIS_URL is set), listens on the fixed local ports below, and is started in dependency
order once the one before answers its health check. Ctrl-C (or SIGTERM) stops them all
gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackMember:
    name: str
    base_port: int
    metrics_port: int
    calls: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        return self.name.upper() + "_"

    @property
    def public_port(self) -> int:
        return self.base_port

    @property
    def admin_port(self) -> int:
        return self.base_port + 1

    @property
    def internal_port(self) -> int:
        return self.base_port + 2


# In dependency order: a service starts after the ones it calls.
STACK = (
    StackMember("auth", 50051, 9101),
    StackMember("kyc", 50061, 9102, calls=("auth",)),
    StackMember("binding", 50071, 9103, calls=("auth", "kyc")),
    StackMember("refund", 50081, 9104, calls=("auth", "binding")),
)


def present_members() -> list[StackMember]:
    """The services this checkout contains (each lands with its own issue)."""
    return [m for m in STACK if (ROOT / "services" / m.name / "__main__.py").is_file()]


def member_environment(member: StackMember, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    p = member.prefix
    env.update(
        {
            f"{p}PUBLIC_PORT": str(member.public_port),
            f"{p}ADMIN_PORT": str(member.admin_port),
            f"{p}INTERNAL_PORT": str(member.internal_port),
            f"{p}METRICS_PORT": str(member.metrics_port),
            f"{p}DATABASE_URL": f"sqlite+aiosqlite:///{var_dir / (member.name + '.db')}",
        }
    )
    if redis_url := os.environ.get("REDIS_URL"):
        env[f"{p}REDIS_URL"] = redis_url
    by_name = {m.name: m for m in STACK}
    for callee in member.calls:
        env[f"{p}{callee.upper()}_INTERNAL_ADDRESS"] = f"127.0.0.1:{by_name[callee].internal_port}"
    return env


async def wait_until_serving(port: int, process: asyncio.subprocess.Process) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"exited with status {process.returncode} while starting")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("did not report SERVING within 30 seconds")


async def run_stack() -> int:
    members = present_members()
    var_dir = ROOT / "var"
    var_dir.mkdir(exist_ok=True)
    processes: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for member in members:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{member.name}",
                env=member_environment(member, var_dir),
                cwd=ROOT,
            )
            processes.append(process)
            await wait_until_serving(member.internal_port, process)
            print(
                f"{member.name:8} public 127.0.0.1:{member.public_port}  "
                f"admin :{member.admin_port}  internal :{member.internal_port}  "
                f"metrics http://127.0.0.1:{member.metrics_port}/metrics",
                flush=True,
            )
        print("all services are serving; Ctrl-C stops them", flush=True)
        exited = [asyncio.create_task(p.wait()) for p in processes]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *exited], return_when=asyncio.FIRST_COMPLETED)
        return 0 if stop.is_set() else 1
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(run_stack()))
