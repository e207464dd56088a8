"""`python -m services`: the embedded stack, every service in its own process on this machine,
and refund's simulated payout gateway in one of its own (as a provider would be), unless
REFUND_GATEWAY_URL names another.

Each service keeps its own SQLite file under `var/` and the in-process rate limiter (or Redis
when REDIS_URL is set), appends the SMS and e-mail it sends (also printed) to the development
inbox `var/inbox.jsonl` (`walletcore.notify.inbox`, where `make demo` reads its codes),
listens on the fixed local ports below, and is started in dependency order once the one
before answers its health check. Ctrl-C (or SIGTERM) stops them all gracefully.

A variable the user set wins over the launcher's default: `AUTH_PUBLIC_PORT=6000 make run`
moves auth's public port, `AUTH_DATABASE_URL` its database. Every port must be free before
anything starts; a busy one stops the launcher with one line naming it (exit status 1).
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_SECONDS = 30.0
PORT_KINDS = ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")


class LaunchFailed(Exception):
    """Why the stack cannot start, as the one line the user reads."""


@dataclass(frozen=True)
class StackMember:
    name: str
    base_port: int
    metrics_port: int
    calls: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        return self.name.upper() + "_"

    def default_ports(self) -> dict[str, int]:
        """The fixed local ports by kind, before the user's variables."""
        return {
            "PUBLIC": self.base_port,
            "ADMIN": self.base_port + 1,
            "INTERNAL": self.base_port + 2,
            "METRICS": self.metrics_port,
        }

    def ports(self, environ: Mapping[str, str]) -> dict[str, int]:
        """The ports this member will listen on: `<PREFIX><KIND>_PORT` when set, else the
        default. Fixed ones only: the launcher must know where to find the member."""
        return {
            kind: fixed_port(environ, f"{self.prefix}{kind}_PORT", default)
            for kind, default in self.default_ports().items()
        }


def fixed_port(environ: Mapping[str, str], variable: str, default: int) -> int:
    """`variable`'s port when set, else `default`."""
    raw = environ.get(variable)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise LaunchFailed(f"{variable} must be a port number") from None
    if not 1 <= number <= 65535:
        raise LaunchFailed(f"{variable} must be a fixed port from 1 to 65535")
    return number


@dataclass(frozen=True)
class SimulatedGateway:
    """Refund's simulated payout gateway (HTTP, `services.refund.gateway_sim`), started just
    before refund when REFUND_GATEWAY_URL is unset, so its ledger outlives a crash of refund."""

    name: str = "gateway"
    port_variable: str = "REFUND_SIM_PORT"
    default_port: int = 50090

    def port(self, environ: Mapping[str, str]) -> int:
        return fixed_port(environ, self.port_variable, self.default_port)

    def url(self, environ: Mapping[str, str]) -> str:
        return f"http://{HOST}:{self.port(environ)}"

    @staticmethod
    def wanted(environ: Mapping[str, str]) -> bool:
        return not environ.get("REFUND_GATEWAY_URL")


# In dependency order: a service starts after the ones it calls.
STACK = (
    StackMember("auth", 50051, 9101),
    StackMember("kyc", 50061, 9102, calls=("auth",)),
    StackMember("binding", 50071, 9103, calls=("auth", "kyc")),
    StackMember("refund", 50081, 9104, calls=("auth", "binding")),
)
GATEWAY = SimulatedGateway()


def present_members() -> list[StackMember]:
    """The services this checkout contains (each lands with its own issue)."""
    return [m for m in STACK if (ROOT / "services" / m.name / "__main__.py").is_file()]


def inbox_path(environ: Mapping[str, str], var_dir: Path | None = None) -> Path:
    """The development inbox auth writes to: AUTH_NOTIFIER__INBOX_PATH, else `var/inbox.jsonl`."""
    # Auth is the member that sends; every member gets the same default.
    return Path(
        environ.get("AUTH_NOTIFIER__INBOX_PATH") or (var_dir or ROOT / "var") / "inbox.jsonl"
    )


def member_environment(
    member: StackMember, var_dir: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: the user's, plus the launcher's defaults for what it left
    unset (ports, database, Redis, the development inbox, the addresses of the members it
    calls)."""
    env = dict(os.environ if environ is None else environ)
    p = member.prefix
    defaults = {f"{p}{kind}_PORT": str(port) for kind, port in member.ports(env).items()}
    defaults[f"{p}DATABASE_URL"] = f"sqlite+aiosqlite:///{var_dir / (member.name + '.db')}"
    defaults[f"{p}NOTIFIER__INBOX_PATH"] = str(var_dir / "inbox.jsonl")
    if redis_url := env.get("REDIS_URL"):
        defaults[f"{p}REDIS_URL"] = redis_url
    by_name = {m.name: m for m in STACK}
    for callee in member.calls:
        internal = by_name[callee].ports(env)["INTERNAL"]
        defaults[f"{p}{callee.upper()}_INTERNAL_ADDRESS"] = f"{HOST}:{internal}"
    if member.name == "refund" and GATEWAY.wanted(env):
        defaults["REFUND_GATEWAY_URL"] = GATEWAY.url(env)
    for name, value in defaults.items():
        if not env.get(name):
            env[name] = value
    return env


def gateway_wanted(members: list[StackMember], environ: Mapping[str, str]) -> bool:
    return any(m.name == "refund" for m in members) and GATEWAY.wanted(environ)


def claimed_ports(
    members: list[StackMember], environ: Mapping[str, str]
) -> list[tuple[str, int, bool]]:
    """Every (variable, port, binds with SO_REUSEADDR) the stack will listen on. The gRPC
    services bind without it; the gateway's HTTP server binds with it (http.server's default),
    because it closes each connection first and leaves TIME_WAIT entries on its port."""
    claims = [
        (f"{member.prefix}{kind}_PORT", port, False)
        for member in members
        for kind, port in member.ports(environ).items()
    ]
    if gateway_wanted(members, environ):
        claims.append((GATEWAY.port_variable, GATEWAY.port(environ), True))
    return claims


def busy_ports(members: list[StackMember], environ: Mapping[str, str]) -> None:
    """Raises LaunchFailed naming the first port of `members` that is taken (or repeated).

    The probe binds as the listener will (the services without SO_REUSEADDR/SO_REUSEPORT),
    so a port another process listens on (or still holds) is refused here as it would be to
    the service.
    """
    claimed: dict[int, str] = {}
    for variable, port, reuses_address in claimed_ports(members, environ):
        if port in claimed:
            raise LaunchFailed(f"port {port} is set for both {claimed[port]} and {variable}")
        claimed[port] = variable
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if reuses_address:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise LaunchFailed(
                    f"port {port} ({variable}) is {reason}: stop what listens there "
                    f"(another `make run`?) or set {variable} to a free port"
                ) from None


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a listening TCP socket on `port`; None where /proc cannot
    say (not Linux)."""
    proc = Path("/proc")
    if not (proc / "net" / "tcp").is_file():
        return None
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = proc / "net" / table
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{inode}]")
    try:
        descriptors = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in inodes:
                return True
        except OSError:
            continue
    return False


async def wait_until_serving(
    member: StackMember, port: int, process: asyncio.subprocess.Process, stop: asyncio.Event
) -> None:
    """Returns once `process` itself answers SERVING on `port` (or a stop was asked for)."""
    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        while loop.time() < deadline and not stop.is_set():
            if process.returncode is not None:
                break
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.aio.AioRpcError:
                reply = None
            # Whoever answered must be this child: another process may have taken the port
            # since it was found free.
            if reply is not None and reply.status == health_pb2.HealthCheckResponse.SERVING:
                if listens_on(process.pid, port) is False:
                    variable = f"{member.prefix}INTERNAL_PORT"
                    raise LaunchFailed(
                        f"port {port} ({variable}) is in use by another process: "
                        f"set {variable} to a free port"
                    )
                if process.returncode is None:
                    return
            await asyncio.sleep(0.1)
    if stop.is_set():
        return
    if process.returncode is not None:
        raise LaunchFailed(
            f"{member.name} exited with status {process.returncode} while starting "
            "(its output is above)"
        )
    raise LaunchFailed(f"{member.name} did not report SERVING within {STARTUP_SECONDS:.0f} s")


async def wait_until_gateway_answers(
    port: int, process: asyncio.subprocess.Process, stop: asyncio.Event
) -> None:
    """Returns once the simulated gateway `process` answers its health path on `port`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    url = f"http://{HOST}:{port}/health"
    while loop.time() < deadline and not stop.is_set() and process.returncode is None:
        try:
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=1).close())
        except OSError:
            await asyncio.sleep(0.1)
            continue
        if listens_on(process.pid, port) is False:
            raise LaunchFailed(
                f"port {port} ({GATEWAY.port_variable}) is in use by another process: "
                f"set {GATEWAY.port_variable} to a free port"
            )
        return
    if stop.is_set():
        return
    if process.returncode is not None:
        raise LaunchFailed(f"the simulated gateway exited with status {process.returncode}")
    raise LaunchFailed(f"the simulated gateway did not answer within {STARTUP_SECONDS:.0f} s")


async def start_gateway(
    processes: list[tuple[str, asyncio.subprocess.Process]], stop: asyncio.Event
) -> None:
    """Starts refund's simulated gateway in a process of its own and waits for it."""
    env = dict(os.environ)
    env[GATEWAY.port_variable] = str(GATEWAY.port(env))  # an empty value means the default
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.refund.gateway_sim", env=env, cwd=ROOT
    )
    processes.append((GATEWAY.name, process))
    await wait_until_gateway_answers(GATEWAY.port(env), process, stop)
    if not stop.is_set():
        print(
            f"{GATEWAY.name:8} {GATEWAY.url(env)}  simulated payouts for refund "
            "(GET /ledger shows what it paid)",
            flush=True,
        )


async def run_stack() -> int:
    members = present_members()
    var_dir = ROOT / "var"
    var_dir.mkdir(exist_ok=True)
    busy_ports(members, os.environ)
    processes: list[tuple[str, asyncio.subprocess.Process]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for member in members:
            if member.name == "refund" and gateway_wanted(members, os.environ):
                await start_gateway(processes, stop)
                if stop.is_set():
                    return 0
            env = member_environment(member, var_dir)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{member.name}", env=env, cwd=ROOT
            )
            processes.append((member.name, process))
            ports = member.ports(env)
            await wait_until_serving(member, ports["INTERNAL"], process, stop)
            if stop.is_set():
                return 0
            print(
                f"{member.name:8} public {HOST}:{ports['PUBLIC']}  "
                f"admin :{ports['ADMIN']}  internal :{ports['INTERNAL']}  "
                f"metrics http://{HOST}:{ports['METRICS']}/metrics",
                flush=True,
            )
        print(
            f"inbox    {inbox_path(os.environ, var_dir)}  every SMS and e-mail sent "
            "(also printed above; `make demo` reads its codes there)",
            flush=True,
        )
        print("all services are serving; Ctrl-C stops them", flush=True)
        exited = [asyncio.create_task(p.wait()) for _, p in processes]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *exited], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        for name, process in processes:
            if process.returncode is not None:
                raise LaunchFailed(f"{name} exited with status {process.returncode}")
        return 1
    finally:
        for _, process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()


def main() -> int:
    try:
        return asyncio.run(run_stack())
    except LaunchFailed as failed:
        print(f"services: {failed}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
