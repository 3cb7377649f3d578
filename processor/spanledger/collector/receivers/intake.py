"""What both receivers do with a request, so gRPC and HTTP answer alike.

:meth:`Intake.handle` turns a body into an :class:`Outcome` (an OTLP response
or a refusal with a reason); the receivers only map outcomes to gRPC codes or
HTTP statuses. Every exception is caught here and counted: no request can
take the collector down.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from spanledger.collector import otlp
from spanledger.collector.access import Access, bearer
from spanledger.collector.metrics import Metrics
from spanledger.collector.receivers import token_stamp
from spanledger.collector.spool import Spool, SpoolClosed, SpoolFull
from spanledger.collector.tokens import WRITE

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
    """``token``: the shared bearer token; ``access``: the collector's auth (a tokens file),
    which replaces it. With a tokens file each accepted request's resources are stamped
    with the name of its token (:mod:`.token_stamp`) before they are spooled."""

    def __init__(self, spool: Spool, metrics: Metrics, token: str | None,
                 access: Access | None = None) -> None:
        self.spool = spool
        self.metrics = metrics
        self.access = access if access is not None else Access(token)

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
            token = self.access.find(bearer(auth_header))
            if token is None:
                return self.refuse(Refusal.UNAUTHENTICATED, "missing or wrong bearer token")
            if not token.may(WRITE):
                return self.refuse(Refusal.UNAUTHENTICATED,
                                   f"token {token.name!r} is a read token: it may not send spans")
            try:
                accepted = otlp.parse_json(body) if json_body else otlp.parse_protobuf(body)
            except otlp.BadRequest as exc:
                return self.refuse(Refusal.BAD_REQUEST, str(exc))
            if accepted.rejected:
                self.metrics.inc("spans_rejected_total", accepted.rejected)
            if accepted.spans:
                if self.access.stamps:
                    accepted.payload, forged = token_stamp.stamp(
                        accepted.payload, accepted.request, token.name)
                    if forged:
                        self.metrics.inc("auth_stamps_stripped_total", forged)
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
