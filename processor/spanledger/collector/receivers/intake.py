"""What both receivers do with a request, so gRPC and HTTP answer alike.

:meth:`Intake.handle` turns a body into an :class:`Outcome` (an OTLP response
or a refusal with a reason); the receivers only map outcomes to gRPC codes or
HTTP statuses. Every exception is caught here and counted: no request can
take the collector down.
"""

from __future__ import annotations

import enum
import hmac
import logging
from dataclasses import dataclass

from spanledger.collector import otlp
from spanledger.collector.metrics import Metrics
from spanledger.collector.spool import Spool, SpoolClosed, SpoolFull

log = logging.getLogger(__name__)

#: seconds a client is told to wait when the spool is full (Retry-After / gRPC retry)
RETRY_AFTER_S = 5


class Refusal(enum.Enum):
    BAD_REQUEST = "bad_request"
    OVERSIZE = "oversize"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


@dataclass(slots=True)
class Outcome:
    accepted: otlp.Accepted | None = None
    refusal: Refusal | None = None
    message: str = ""


class Intake:
    def __init__(self, spool: Spool, metrics: Metrics, token: str | None) -> None:
        self.spool = spool
        self.metrics = metrics
        self.token = token

    def authorized(self, header: str | None) -> bool:
        if not self.token:
            return True
        if not header or not header.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    def refuse(self, refusal: Refusal, message: str) -> Outcome:
        counter = {
            Refusal.BAD_REQUEST: "requests_bad_total",
            Refusal.OVERSIZE: "requests_oversize_total",
            Refusal.UNAUTHENTICATED: "requests_unauthenticated_total",
            Refusal.UNAVAILABLE: "requests_unavailable_total",
            Refusal.INTERNAL: "requests_failed_total",
        }[refusal]
        self.metrics.inc(counter)
        return Outcome(refusal=refusal, message=otlp.safe_message(message))

    def handle(self, body: bytes, *, json_body: bool, auth_header: str | None) -> Outcome:
        self.metrics.inc("requests_total")
        try:
            if not self.authorized(auth_header):
                return self.refuse(Refusal.UNAUTHENTICATED, "missing or wrong bearer token")
            try:
                accepted = otlp.parse_json(body) if json_body else otlp.parse_protobuf(body)
            except otlp.BadRequest as exc:
                return self.refuse(Refusal.BAD_REQUEST, str(exc))
            if accepted.rejected:
                self.metrics.inc("spans_rejected_total", accepted.rejected)
            if accepted.spans:
                try:
                    self.spool.append(accepted.payload, accepted.spans)
                except SpoolFull as exc:
                    return self.refuse(Refusal.UNAVAILABLE, f"{exc}; retry later")
                except SpoolClosed as exc:
                    return self.refuse(Refusal.UNAVAILABLE, str(exc))
                self.metrics.inc("spans_received_total", accepted.spans)
            return Outcome(accepted=accepted)
        except Exception as exc:  # never let one request crash a receiver thread
            log.exception("request failed")
            return self.refuse(Refusal.INTERNAL, f"internal error: {exc}")
