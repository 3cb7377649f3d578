"""Baggage-trust settings for one test: installed, then put back as they were.

The settings are process-wide (``attribute()`` signs with them, the propagator checks
with them), so a test that changes them restores the previous ones and the global
propagator on the way out: no other test sees its keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import propagate

from spanledger.processor import baggage_trust
from spanledger.processor.baggage_trust import BaggageTrust


@contextlib.contextmanager
def baggage_settings(**settings: Any) -> Iterator[BaggageTrust]:
    """``BaggageTrust.of(**settings)`` installed for the ``with`` block."""
    saved_trust, saved_map = baggage_trust._trust, propagate.get_global_textmap()
    try:
        yield baggage_trust.install(BaggageTrust.of(**settings))
    finally:
        baggage_trust._trust = saved_trust
        propagate.set_global_textmap(saved_map)
