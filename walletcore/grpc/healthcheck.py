"""`python -m walletcore.grpc.healthcheck [host:port]`: exit 0 when the server answers SERVING.

The container health check (Dockerfile HEALTHCHECK, docker-compose `healthcheck`) asks the
standard gRPC health service, as Kubernetes' native gRPC probes do. Without an argument it asks
`127.0.0.1:$<SERVICE>_INTERNAL_PORT`, `SERVICE` being the image's service name (auth, kyc, ...).
Exit 1 when the server answers anything else or cannot be reached, 2 on a usage error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def default_target(environ: Mapping[str, str]) -> str:
    """`127.0.0.1:<internal port>` of the image's service; ValueError naming what is missing."""
    service = environ.get("SERVICE", "")
    if not service:
        raise ValueError("give host:port or set SERVICE")
    variable = f"{service.upper()}_INTERNAL_PORT"
    port = environ.get(variable, "")
    if not port.isdigit():
        raise ValueError(f"give host:port or set {variable}")
    return f"127.0.0.1:{port}"


def is_serving(target: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Whether the server at `target` answers SERVING for the whole server."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        print("usage: python -m walletcore.grpc.healthcheck [host:port]", file=sys.stderr)
        return 2
    try:
        target = args[0] if args else default_target(os.environ if environ is None else environ)
    except ValueError as problem:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 2
    if is_serving(target):
        return 0
    print(f"healthcheck: {target} is not serving", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
