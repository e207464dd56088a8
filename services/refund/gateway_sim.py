"""The simulated payout gateway: its own small process that refund pays out through in
development and in the tests (`python -m services.refund.gateway_sim`).

It behaves as a provider does where it matters to refund: each idempotency key pays at most
once and a repeated key answers the first outcome; it keeps its own ledger of what it paid
(`GET /ledger`), so a crash of refund can be checked against the gateway's record; and it
declines, fails, reports the instrument gone or answers late at configured rates, from a
seeded generator, so a run repeats. Tests script the next outcomes and reversals through
`POST /control/script` and `POST /control/reverse` (never on a real provider).

Settings (environment): REFUND_SIM_HOST (127.0.0.1), REFUND_SIM_PORT (50090),
REFUND_SIM_LATENCY_SECONDS (0), REFUND_SIM_DECLINE_RATE, REFUND_SIM_ERROR_RATE,
REFUND_SIM_TIMEOUT_RATE (0 each; a "timeout" pays and then answers after
REFUND_SIM_TIMEOUT_SECONDS, 30), REFUND_SIM_SEED (0).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger("services.refund.gateway_sim")

SCRIPTABLE: Final = frozenset(
    {"PAY", "DECLINE", "ERROR", "INSTRUMENT_GONE", "PAY_THEN_TIME_OUT", "LOSE_REQUEST"}
)
_OUTCOMES: Final = {
    "DECLINE": ("DECLINED", "DO_NOT_HONOUR"),
    "ERROR": ("ERROR", "ISSUER_UNAVAILABLE"),
    "INSTRUMENT_GONE": ("INSTRUMENT_UNAVAILABLE", "INSTRUMENT_CLOSED"),
}


@dataclass
class SimulatorConfig:
    latency_seconds: float = 0.0
    decline_rate: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    seed: int = 0

    @classmethod
    def from_environment(cls) -> SimulatorConfig:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(f"REFUND_SIM_{name}", default))

        return cls(
            latency_seconds=number("LATENCY_SECONDS", 0.0),
            decline_rate=number("DECLINE_RATE", 0.0),
            error_rate=number("ERROR_RATE", 0.0),
            timeout_rate=number("TIMEOUT_RATE", 0.0),
            timeout_seconds=number("TIMEOUT_SECONDS", 30.0),
            seed=int(number("SEED", 0)),
        )


@dataclass
class Ledger:
    """What the gateway received and paid; one lock, since requests run on threads."""

    config: SimulatorConfig
    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)
    paid: dict[str, dict[str, Any]] = field(default_factory=dict)
    reversals: list[dict[str, str]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _references: int = 0

    def __post_init__(self) -> None:
        # Draws repeat from the seed, so a simulated run can be replayed; nothing secret.
        self._random = random.Random(self.config.seed)  # noqa: S311 (a seeded simulator of payout outcomes, no secret)

    def _behaviour(self) -> str:
        if self.script:
            return self.script.pop(0)
        draw = self._random.random()
        c = self.config
        for name, rate in (
            ("DECLINE", c.decline_rate),
            ("ERROR", c.error_rate),
            ("PAY_THEN_TIME_OUT", c.timeout_rate),
        ):
            if draw < rate:
                return name
            draw -= rate
        return "PAY"

    def pay(self, body: dict[str, Any]) -> tuple[dict[str, str] | None, float]:
        """The outcome (None: the request is lost) and how long to wait before answering."""
        key = str(body["idempotency_key"])
        with self.lock:
            known = self.outcomes.get(key)
            if known is not None:
                return known, self.config.latency_seconds
            behaviour = self._behaviour()
            if behaviour == "LOSE_REQUEST":
                return None, self.config.timeout_seconds
            self._references += 1
            reference = f"sim-{self._references:06d}"
            status, code = _OUTCOMES.get(behaviour, ("SUCCEEDED", ""))
            outcome = {"status": status, "reference": reference, "code": code}
            self.outcomes[key] = outcome
            if status == "SUCCEEDED":
                self.paid[key] = {
                    "instrument_id": body["instrument_id"],
                    "amount_minor": int(body["amount_minor"]),
                    "currency": body["currency"],
                    "reference": reference,
                }
        late = behaviour == "PAY_THEN_TIME_OUT"
        return outcome, self.config.timeout_seconds if late else self.config.latency_seconds

    def reverse(self, key: str, code: str) -> bool:
        with self.lock:
            if key not in self.paid:
                return False
            del self.paid[key]
            self.reversals.append({"idempotency_key": key, "code": code})
            return True


def make_handler(ledger: Ledger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length", 0))
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/payouts/"):
                with ledger.lock:
                    outcome = ledger.outcomes.get(url.path.removeprefix("/payouts/"))
                if outcome is None:
                    self._send(404, {"error": "unknown"})
                else:
                    self._send(200, outcome)
            elif url.path == "/reversals":
                after = int((parse_qs(url.query).get("after") or ["0"])[0] or 0)
                with ledger.lock:
                    items = ledger.reversals[after:]
                    cursor = len(ledger.reversals)
                self._send(200, {"reversals": items, "cursor": str(cursor)})
            elif url.path == "/ledger":
                with ledger.lock:
                    self._send(200, {"paid": dict(ledger.paid)})
            elif url.path == "/health":
                self._send(200, {"status": "SERVING"})
            else:
                self._send(404, {"error": "no such path"})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            if path == "/payouts":
                outcome, delay = ledger.pay(body)
                time.sleep(delay)
                if outcome is None:
                    self._send(504, {"error": "lost"})
                else:
                    self._send(200, outcome)
            elif path == "/control/script":
                behaviours = [str(b) for b in body.get("behaviours", [])]
                if not set(behaviours) <= SCRIPTABLE:
                    self._send(400, {"error": "unknown behaviour"})
                    return
                with ledger.lock:
                    ledger.script.extend(behaviours)
                self._send(200, {})
            elif path == "/control/reverse":
                reversed_ = ledger.reverse(str(body["idempotency_key"]), str(body["code"]))
                self._send(200 if reversed_ else 404, {})
            else:
                self._send(404, {"error": "no such path"})

    return Handler


def serve(host: str, port: int, config: SimulatorConfig) -> ThreadingHTTPServer:
    """A started server (on a thread); `shutdown()` stops it."""
    server = ThreadingHTTPServer((host, port), make_handler(Ledger(config)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="gateway-sim", daemon=True).start()
    return server


def main() -> int:
    logging.basicConfig(level=logging.INFO, format='{"service":"gateway-sim","msg":"%(message)s"}')
    host = os.environ.get("REFUND_SIM_HOST", "127.0.0.1")
    port = int(os.environ.get("REFUND_SIM_PORT", "50090"))
    server = serve(host, port, SimulatorConfig.from_environment())
    logger.info("simulated payout gateway on %s:%d", host, server.server_address[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
