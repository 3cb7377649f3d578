"""Issue 14, "baggage from outside is not trusted", through a real HTTP server.

The service under attack is an HTTP server with its own TracerProvider and
CostSpanProcessor that, like every server instrumentation, extracts the caller's
context with the global propagator and makes an LLM call inside the request. A hostile
caller sends ``baggage: team=victim,cost_center=cc-of-victim``: the service's spend must
not land on the victim, and the attempt must be counted. Attribution a trusted upstream
signed (``spanledger.attribute()`` with a shared baggage key) is taken; the same header
tampered with, signed with a key the service does not hold, or carrying an unsigned
extra key is not. Values are validated wherever they come from, and ``attribute()``
inside the process always wins.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterator
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from opentelemetry import context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import spanledger
from spanledger import semconv as sc
from spanledger.processor import baggage_trust
from spanledger.processor.baggage_trust import STATS, BaggageTrust, TrustedPropagator
from support.local_http import LocalHttpServer, QuietHandler
from support.processor import Capture, attribution, capture, cost_of, genai_attrs
from support.trust import baggage_settings

FORGED = "team=victim,cost_center=cc-of-victim"


def traceparent() -> str:
    """A new remote parent for each request (as a caller's span would be)."""
    return f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"


def counts() -> dict[str, int]:
    return {f.name: getattr(STATS, f.name) for f in dataclasses.fields(STATS)
            if not f.name.startswith("_")}


def delta(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in counts().items() if v != before[k]}


class _Service(QuietHandler):
    """GET /call?team=...: extract the caller's context, a server span, one LLM call inside
    (optionally within the service's own ``attribute(team=...)``)."""

    server: Any

    def do_GET(self) -> None:
        cap: Capture = self.server.cap
        extract = self.server.extract or propagate.extract
        own = parse_qs(urlparse(self.path).query).get("team")
        token = context.attach(extract(dict(self.headers)))
        try:
            tracer = cap.tracer("service")
            with tracer.start_as_current_span("GET /call", kind=trace.SpanKind.SERVER):
                if own:
                    with spanledger.attribute(team=own[0]):
                        self._llm_call(tracer)
                else:
                    self._llm_call(tracer)
        finally:
            context.detach(token)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _llm_call(tracer: Any) -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=genai_attrs(
                "gpt-4o-mini", input_tokens=1000, output_tokens=200)):
            pass


@pytest.fixture
def service() -> Iterator[tuple[str, Capture, ThreadingHTTPServer]]:
    """The instrumented service: (base url, its captured spans, the server)."""
    cap = capture()
    with LocalHttpServer(_Service) as local:
        local.server.cap = cap  # type: ignore[attr-defined]
        local.server.extract = None  # type: ignore[attr-defined]
        yield local.base_url, cap, local.server


def billed(cap: Capture) -> dict[tuple[str, str], Decimal]:
    """Priced spend per (team, cost centre) in what the service exported."""
    out: dict[tuple[str, str], Decimal] = {}
    for span in cap.spans():
        if (span.attributes or {}).get(sc.COST_STATUS) == sc.STATUS_PRICED:
            who = attribution(span)
            key = (who.get("team", ""), who.get("cost_center", ""))
            out[key] = out.get(key, Decimal(0)) + cost_of(span)
    return out


def test_forged_inbound_baggage_bills_nobody_else(
        service: tuple[str, Capture, ThreadingHTTPServer]) -> None:
    url, cap, _ = service
    with baggage_settings():  # the defaults: signed, and no key here
        before = counts()
        for query in ("", "?team=support"):
            headers = {"baggage": FORGED, "traceparent": traceparent()}
            assert requests.get(f"{url}/call{query}", headers=headers, timeout=10).text == "ok"
        # a baggage header without a traceparent (the server span is a root) is checked too
        assert requests.get(f"{url}/call", headers={"baggage": FORGED}, timeout=10).text == "ok"
        spend = billed(cap)
    call = spend[("support", "")]  # one call's cost
    assert call > 0
    assert not [k for k in spend if "victim" in k[0] or "victim" in k[1]]
    assert spend == {("", ""): 2 * call, ("support", ""): call}
    assert [attribution(s) for s in cap.named("GET /call")] == [{}, {}, {}]
    assert delta(before) == {"untrusted": 6}  # 2 keys x 3 requests, counted at ingress


def test_signed_attribution_is_taken_and_tampered_is_refused(
        service: tuple[str, Capture, ThreadingHTTPServer]) -> None:
    url, cap, _ = service
    with baggage_settings(baggage_keys="edge:k1-secret"):
        carrier: dict[str, str] = {}
        with spanledger.attribute(team="search", cost_center="cc-7"):
            propagate.inject(carrier)
        signed = carrier["baggage"]
        assert "spanledger.sig=edge" in signed
        sig = next(p for p in signed.split(",") if p.startswith("spanledger.sig="))

        def sent(header: str) -> dict[str, Any]:
            cap.clear()
            requests.get(f"{url}/call", headers={"baggage": header,
                                                 "traceparent": traceparent()}, timeout=10)
            return attribution(cap.one("chat gpt-4o-mini"))

        before = counts()
        assert sent(signed) == {"team": "search", "cost_center": "cc-7"}
        assert delta(before) == {"verified": 2}
        before = counts()
        assert sent(f"team=victim,cost_center=cc-7,{sig}") == {}  # tampered: nothing vouched
        assert delta(before) == {"bad_signature": 2}
        before = counts()
        assert sent(f"{signed},customer=acme") == {"team": "search", "cost_center": "cc-7"}
        assert delta(before) == {"verified": 2, "untrusted": 1}  # the unsigned extra key
        with baggage_settings(baggage_keys="other:k2-secret"):  # a key this service lacks
            forged_carrier: dict[str, str] = {}
            with spanledger.attribute(team="victim"):
                propagate.inject(forged_carrier)
        before = counts()
        assert sent(forged_carrier["baggage"]) == {}
        assert delta(before) == {"bad_signature": 1}


def test_downstream_requests_carry_only_trusted_attribution() -> None:
    """What was dropped at ingress is not sent on: the next hop never sees the forged team."""
    with baggage_settings():
        capture()  # a processor in this process: the check is installed
        ctx = propagate.extract({"baggage": FORGED + ",region=eu"})
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=ctx)
    assert carrier["baggage"] == "region=eu"


def test_trust_modes_all_and_none() -> None:
    with baggage_settings(baggage_keys="edge:k1-secret"):
        carrier: dict[str, str] = {}
        with spanledger.attribute(team="search"):
            propagate.inject(carrier)
    for mode, expected in (("all", {"team": "victim"}), ("none", {})):
        with baggage_settings(trust_baggage=mode, baggage_keys="edge:k1-secret"):
            ctx = propagate.extract({"baggage": "team=victim"})
            assert dict(spanledger_baggage(ctx)) == expected, mode
            signed = propagate.extract(carrier)
            assert spanledger_baggage(signed).get("team") == (None if mode == "none"
                                                               else "search")


def spanledger_baggage(ctx: Any) -> dict[str, object]:
    from opentelemetry import baggage

    return {k: v for k, v in baggage.get_all(ctx).items()
            if k in sc.DEFAULT_ATTRIBUTION_KEYS}


def test_values_are_validated_and_dropped_never_copied(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    with baggage_settings(trust_baggage="all", teams=["support", "search"]):
        cap = capture()
        tracer = cap.tracer()
        before = counts()
        with caplog.at_level(logging.WARNING, logger="spanledger.processor"):
            for team, cc in (("support", "cc-1"), ("x" * 129, "cc-1"), ("unknown-team", "cc-1"),
                             ("search", "cc\n2"), ("search", "cc;drop"), ("search", "x" * 128)):
                with spanledger.attribute(team=team, cost_center=cc), \
                        tracer.start_as_current_span(f"{team[:12]}/{cc[:4]}"):
                    pass
            inbound = propagate.extract({"baggage": "team=support,cost_center=cc%3Bdrop"})
            with tracer.start_as_current_span("inbound", context=inbound):
                pass
        got = [attribution(s) for s in cap.spans()]
    assert got == [
        {"team": "support", "cost_center": "cc-1"},
        {"cost_center": "cc-1"},  # 129 characters
        {"cost_center": "cc-1"},  # not in the closed list of teams
        {"team": "search"},  # a newline
        {"team": "search"},  # a semicolon
        {"team": "search", "cost_center": "x" * 128},  # 128 is the limit, inclusive
        {"team": "support"},  # dropped at ingress: ";" after unquoting
    ]
    assert delta(before) == {"invalid": 5}  # 4 set here, 1 inbound
    assert len([r for r in caplog.records if "dropped as invalid" in r.getMessage()]) <= 1


def test_without_the_ingress_check_the_processor_checks_the_server_span(
        service: tuple[str, Capture, ThreadingHTTPServer],
        caplog: pytest.LogCaptureFixture) -> None:
    """The propagator the server extracts with is not the global one (or was replaced
    after spanledger was set up): the processor drops the inbound attribution on the span
    whose parent is remote, and on the spans below it that share its baggage."""
    url, cap, server = service
    plain = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    server.extract = plain.extract  # type: ignore[attr-defined]
    with baggage_settings(), caplog.at_level(logging.WARNING, logger="spanledger.processor"):
        before = counts()
        for query in ("?team=support", ""):
            requests.get(f"{url}/call{query}", headers={
                "baggage": FORGED, "traceparent": traceparent()}, timeout=10)
        spend = billed(cap)
    assert [attribution(s) for s in cap.named("GET /call")] == [{}, {}]
    assert sorted(spend) == [("", ""), ("support", "")]
    assert delta(before) == {"untrusted": 4, "unchecked_ingress": 2}
    assert any("without spanledger's ingress check" in r.getMessage() for r in caplog.records)


def test_attribute_in_the_process_always_wins() -> None:
    """A remote parent does not make this process's own attribution foreign."""
    with baggage_settings():
        cap = capture()
        remote = trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True,
                                   trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        inbound = propagate.extract({"baggage": FORGED})  # checked: nothing of it is left
        token = context.attach(inbound)
        try:
            with spanledger.attribute(team="edge", cost_center="cc-edge"), \
                    cap.tracer().start_as_current_span(
                        "consumer", context=trace.set_span_in_context(
                            trace.NonRecordingSpan(remote))):
                pass
        finally:
            context.detach(token)
    assert attribution(cap.one("consumer")) == {"team": "edge", "cost_center": "cc-edge"}


def test_settings_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLEDGER_TRUST_BAGGAGE", "NONE")
    monkeypatch.setenv("SPANLEDGER_BAGGAGE_KEYS", "gw:s1, edge:s2")
    monkeypatch.setenv("SPANLEDGER_TEAMS", "a, b")
    env = BaggageTrust.of()
    assert (env.mode, list(env.keys), env.teams) == ("none", ["gw", "edge"], {"a", "b"})
    assert BaggageTrust.of(trust_baggage="all", baggage_keys="plain", teams=[]).keys == {
        "default": b"plain"}
    with pytest.raises(ValueError, match="trust_baggage must be one of"):
        BaggageTrust.of(trust_baggage="some")
    with pytest.raises(ValueError, match="baggage key 'bad id'"):
        BaggageTrust.of(baggage_keys="bad id:secret")
    saved, saved_map = baggage_trust._trust, propagate.get_global_textmap()
    try:
        spanledger.configure(exporter=capture().exporter, set_global=False,
                             trust_baggage="all", baggage_keys="k:v", teams=["x"],
                             attribution_keys=["team", "region"]).shutdown()
        now = baggage_trust.trust()
        assert (now.mode, dict(now.keys), now.teams) == ("all", {"k": b"v"}, {"x"})
        assert "region" in now.attribution_keys
        assert isinstance(propagate.get_global_textmap(), TrustedPropagator)
        capture()  # a processor without settings keeps the installed ones
        assert baggage_trust.trust() is now
    finally:
        baggage_trust._trust = saved
        propagate.set_global_textmap(saved_map)


def test_a_known_trace_id_does_not_carry_another_callers_attribution(
        service: tuple[str, Capture, ThreadingHTTPServer]) -> None:
    """Trace ids are not secrets (every request header carries one): a caller reusing the
    trace id of the victim's earlier request gets none of the victim's attribution, even
    on spans that fall back to their trace's local root."""
    url, cap, _ = service
    with baggage_settings(baggage_keys="edge:k1-secret"):
        carrier: dict[str, str] = {}
        with spanledger.attribute(team="billing", cost_center="cc-billing"):
            propagate.inject(carrier)
        known = traceparent()
        requests.get(f"{url}/call", headers={"baggage": carrier["baggage"],
                                             "traceparent": known}, timeout=10)
        victim = cap.named("chat gpt-4o-mini")
        assert [attribution(s) for s in victim] == [{"team": "billing",
                                                     "cost_center": "cc-billing"}]
        cap.clear()
        requests.get(f"{url}/call", headers={"traceparent": known}, timeout=10)
        assert attribution(cap.one("chat gpt-4o-mini")) == {}
