"""Sending an alert: a generic webhook (HMAC-SHA256 signed), a Slack incoming webhook, a log.

Generic webhook: ``POST`` of the alert's JSON body with

- ``X-Spanledger-Alert-Id``: the alert's id (the same on every retry: drop repeats by it);
- ``X-Spanledger-Timestamp``: Unix seconds when this try was sent;
- ``X-Spanledger-Signature``: ``sha256=`` + hex HMAC-SHA256 over
  ``<timestamp>.<body>`` with the channel's shared secret (when one is set).

A receiver checks the signature with the secret and rejects old timestamps
(replays). Slack gets ``{"text": ...}``. A try succeeds on any 2xx; others
are retried ``tries`` times with exponential backoff (1 s, 2 s, 4 s from
``backoff_s``), except 4xx answers other than 408/429 (retrying the same
request cannot fix them). What still fails is retried by a later evaluation
(:func:`spanledger.budgets.alert_state.retry_at`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from spanledger.reports.budgets import Channel

log = logging.getLogger("spanledger.alerts")

SIGNATURE_HEADER = "X-Spanledger-Signature"
TIMESTAMP_HEADER = "X-Spanledger-Timestamp"
ALERT_ID_HEADER = "X-Spanledger-Alert-Id"
_RETRYABLE_4XX = (408, 429)


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    #: HTTP tries made (0 for the log channel)
    tries: int
    error: str = ""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` + HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver runs (constant-time compare)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, f"unreachable: {reason}"


def deliver(channel: Channel, payload: str, text: str, alert_id: str,
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send one alert to ``channel`` (tries with backoff); the outcome, never an exception."""
    if channel.kind == "log":
        log.warning("%s", text)
        return Delivery(True, 0)
    assert channel.url is not None
    if channel.kind == "slack":
        body = json.dumps({"text": text}).encode("utf-8")
    else:
        body = payload.encode("utf-8")
    error = ""
    for attempt in range(channel.tries):
        if attempt:
            sleep(float(channel.backoff_s) * 2 ** (attempt - 1))
        headers = {"Content-Type": "application/json", "User-Agent": "spanledger-alerts",
                   ALERT_ID_HEADER: alert_id}
        if channel.kind == "webhook":
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            if channel.secret:
                headers[SIGNATURE_HEADER] = sign(channel.secret, stamp, body)
        status, error = _post(channel.url, body, headers, float(channel.timeout_s))
        if 200 <= status < 300:
            return Delivery(True, attempt + 1)
        if not error:
            error = f"HTTP {status}"
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return Delivery(False, attempt + 1, error)
    log.warning("alert %s to channel %s failed after %d tries: %s", alert_id, channel.name,
                channel.tries, error)
    return Delivery(False, channel.tries, error)
