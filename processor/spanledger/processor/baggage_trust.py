"""Baggage from outside is not trusted: attribution that arrives with a request is checked.

W3C baggage is a header: any caller can send ``baggage: team=victim,cost_center=cc-victim``
to an instrumented service and, without this module, the service's LLM spend would be
billed to the victim. So attribution that arrives from outside is checked where it
arrives (at ingress), and values are validated wherever they come from.

**Where the check runs.** :class:`TrustedPropagator` wraps the global propagator (every
server instrumentation extracts the caller's context with it): after extraction, the
attribution entries that came from the carrier are kept only when trusted, the rest are
dropped (and counted) before any span or downstream request sees them. It is installed
by :func:`spanledger.configure`, the zero-code distro and every ``CostSpanProcessor``
(:func:`install`). Should the global propagator be replaced afterwards, the processor
itself checks the baggage of a span whose parent is remote and whose context did not go
through the check (:func:`checked`): the server span, and the spans sharing its baggage
while the processor's per-baggage cache holds it (best effort: install the propagator).

**What is trusted** (``trust_baggage`` / ``$SPANLEDGER_TRUST_BAGGAGE``):

- ``signed`` (default): attribution carrying a valid signature. :func:`spanledger.attribute`
  signs the attribution entries of the baggage it sets (``spanledger.sig``: an HMAC-SHA256
  over the covered keys and values) when a baggage key is configured
  (``baggage_keys`` / ``$SPANLEDGER_BAGGAGE_KEYS``); a service holding the same key verifies
  it. Without a key nothing from outside is taken: attribution stops at the process edge.
- ``all``: every inbound value is taken (the behaviour before this check), for a service
  only trusted peers can reach (a mesh with mTLS: trust by network is decided there; a
  process cannot see it).
- ``none``: inbound attribution is always dropped, signed or not.

**Which upstreams.** An upstream service is known by its key, never by a name it sends:
keys have ids (``"gateway:SECRET,checkout:SECRET2"``); the signature names the key it was
made with, and only keys configured here verify. Give each trusted upstream its own key
and configure exactly those: that is the allow-list. The first key signs.

**Values** (inbound and local alike): at most :data:`MAX_VALUE_LENGTH` characters of
letters, digits, space and ``. _ - : / @ + #``; with ``teams`` (``$SPANLEDGER_TEAMS``) a
team must be in that closed list. An invalid value is dropped and counted, never copied
onto a span. Inside a process nothing changes: ``attribute()`` in the same process always
wins (its values are local, and it signs what it sets).

A signature does not bind to a trace: a service that received signed baggage can send it
on (that is how attribution reaches the next hop), so it can replay what an upstream
vouched for, not invent a team of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import baggage, metrics, propagate
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter

from spanledger import semconv as sc

from . import sdk_access

__all__ = ["MAX_VALUE_LENGTH", "STATS", "BaggageTrust", "TrustStats", "TrustedPropagator",
           "checked", "install", "local", "trust"]

log = logging.getLogger("spanledger.processor")

TRUST_ENV = "SPANLEDGER_TRUST_BAGGAGE"
KEYS_ENV = "SPANLEDGER_BAGGAGE_KEYS"
TEAMS_ENV = "SPANLEDGER_TEAMS"
MODES = ("signed", "all", "none")
MAX_VALUE_LENGTH = 128
SIG = sc.BAGGAGE_SIGNATURE
_VALUE = re.compile(r"[\w .:/@+#-]+")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: a context that went through the check at ingress (so the processor need not repeat it)
_CHECKED = context_api.create_key("spanledger-baggage-checked")
#: the attribution ``attribute()`` set in this process (key -> value), outer ones included
_LOCAL = context_api.create_key("spanledger-local-attribution")

_REJECTED = metrics.get_meter("spanledger.processor").create_counter(
    "spanledger.baggage.rejected", unit="{entry}",
    description="attribution baggage entries dropped: untrusted, badly signed or invalid")


@dataclass(slots=True)
class TrustStats:
    """Dropped attribution entries by reason (also the ``spanledger.baggage.rejected`` counter)."""

    #: inbound, and nothing vouches for it (no signature, mode none, or not covered)
    untrusted: int = 0
    #: inbound with a signature that does not verify (unknown key, values changed)
    bad_signature: int = 0
    #: too long, odd characters, or a team outside the closed list
    invalid: int = 0
    #: inbound entries kept because their signature verified
    verified: int = 0
    #: contexts the processor had to check itself (the propagator was not in the path)
    unchecked_ingress: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, reason: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, reason, getattr(self, reason) + n)
        if reason != "verified":
            _REJECTED.add(n, {"spanledger.reason": reason})


STATS = TrustStats()


def _parse_keys(keys: str | Mapping[str, str] | None) -> dict[str, bytes]:
    """``"secret"``, ``"id:secret,id2:secret2"`` or {id: secret} -> {id: secret bytes}."""
    if keys is None:
        return {}
    if isinstance(keys, Mapping):
        items = list(keys.items())
    else:
        items = []
        for part in (p.strip() for p in keys.split(",")):
            if part:
                kid, sep, secret = part.partition(":")
                items.append((kid, secret) if sep else ("default", part))
    out: dict[str, bytes] = {}
    for kid, secret in items:
        if not _KEY_ID.fullmatch(kid) or not secret:
            raise ValueError(f"baggage key {kid!r}: an id is 1-32 letters, digits, '_' or '-' "
                             "and the secret must not be empty")
        out[kid] = secret.encode()
    return out


def _env_list(name: str) -> list[str] | None:
    """A comma-separated variable as a list (None when unset or empty)."""
    items = [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]
    return items or None


@dataclass(frozen=True, slots=True)
class BaggageTrust:
    """What this process takes from inbound baggage, and how it signs its own."""

    mode: str = "signed"
    #: key id -> secret; the first one signs
    keys: Mapping[str, bytes] = field(default_factory=dict)
    #: closed list of teams (None: any valid value)
    teams: frozenset[str] | None = None
    #: the baggage keys that are attribution (checked at ingress, covered by signatures)
    attribution_keys: frozenset[str] = frozenset(sc.DEFAULT_ATTRIBUTION_KEYS)

    @classmethod
    def of(cls, *, trust_baggage: str | None = None,
           baggage_keys: str | Mapping[str, str] | None = None,
           teams: Iterable[str] | None = None,
           attribution_keys: Iterable[str] | None = None) -> BaggageTrust:
        """From arguments; each one that is None from its environment variable."""
        mode = (trust_baggage or os.environ.get(TRUST_ENV) or "signed").strip().lower()
        if mode not in MODES:
            raise ValueError(f"trust_baggage must be one of {', '.join(MODES)}, got {mode!r}")
        keys = _parse_keys(baggage_keys if baggage_keys is not None
                           else os.environ.get(KEYS_ENV))
        team_list = list(teams) if teams is not None else _env_list(TEAMS_ENV)
        return cls(mode, keys, frozenset(team_list) if team_list is not None else None,
                   frozenset(sc.DEFAULT_ATTRIBUTION_KEYS) | frozenset(attribution_keys or ()))

    # -- values ------------------------------------------------------------------------
    def invalid(self, key: str, value: str) -> bool:
        """Is this a value no span may carry? (length, characters, the closed team list)"""
        if len(value) > MAX_VALUE_LENGTH or not _VALUE.fullmatch(value):
            return True
        return key == "team" and self.teams is not None and value not in self.teams

    # -- signatures ------------------------------------------------------------------
    def sign(self, entries: Mapping[str, str]) -> str | None:
        """The ``spanledger.sig`` value for these attribution entries (None: no key)."""
        if not self.keys or not entries:
            return None
        kid = next(iter(self.keys))
        names = sorted(entries)
        return f"{kid}:{','.join(names)}:{_mac(self.keys[kid], names, entries)}"

    def verify(self, sig: str, bag: Mapping[str, Any]) -> tuple[frozenset[str], str | None]:
        """(the keys ``sig`` vouches for, None) or (empty, why not)."""
        kid, _, rest = sig.partition(":")
        listed, _, mac = rest.rpartition(":")
        secret = self.keys.get(kid)
        if secret is None:
            return frozenset(), "bad_signature"
        names = listed.split(",") if listed else []
        values = {n: bag.get(n) for n in names}
        if not names or any(not isinstance(v, str) for v in values.values()):
            return frozenset(), "bad_signature"
        expected = _mac(secret, sorted(names), values)  # type: ignore[arg-type]
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return frozenset(), "bad_signature"
        return frozenset(names), None

    # -- inbound ---------------------------------------------------------------------
    def inbound(self, entries: Mapping[str, Any], bag: Mapping[str, Any]
                ) -> tuple[dict[str, str], dict[str, str]]:
        """Attribution ``entries`` (key -> value) that arrived from outside in ``bag``:
        (kept, dropped key -> reason)."""
        kept: dict[str, str] = {}
        dropped: dict[str, str] = {}
        vouched: frozenset[str] = frozenset()
        why = "untrusted"
        if self.mode == "all":
            vouched = frozenset(entries)
        elif self.mode == "signed":
            sig = bag.get(SIG)
            if isinstance(sig, str) and sig:
                vouched, reason = self.verify(sig, bag)
                why = reason or why
        for key, value in entries.items():
            if key not in vouched:
                dropped[key] = why
            elif not isinstance(value, str) or self.invalid(key, value):
                dropped[key] = "invalid"
            else:
                kept[key] = value
        return kept, dropped


def _mac(secret: bytes, names: list[str], values: Mapping[str, str]) -> str:
    """HMAC-SHA256 over length-prefixed key/value pairs (no separator can be forged)."""
    digest = hmac.new(secret, b"spanledger-baggage-v1", hashlib.sha256)
    for name in names:
        for text in (name, values[name]):
            raw = text.encode()
            digest.update(len(raw).to_bytes(4, "big") + raw)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


# -- the process's trust ------------------------------------------------------------------

_lock = threading.Lock()
_trust: BaggageTrust | None = None
_warned: set[str] = set()


def trust() -> BaggageTrust:
    """The trust this process applies (installed by a processor or configure(); else env)."""
    return _trust if _trust is not None else BaggageTrust.of()


def install(settings: BaggageTrust | None, attribution_keys: Iterable[str] = ()) -> BaggageTrust:
    """Make ``settings`` this process's trust (None: keep the installed one, else the
    environment's) and put :class:`TrustedPropagator` around the global propagator.

    The settings are process-wide because baggage is: ``attribute()`` signs with them and the
    propagator checks with them; a processor given settings replaces those installed before.
    """
    global _trust
    with _lock:
        current = settings or _trust or BaggageTrust.of()
        extra = frozenset(attribution_keys) - current.attribution_keys
        if extra:
            current = BaggageTrust(current.mode, current.keys, current.teams,
                                   current.attribution_keys | extra)
        _trust = current
        _valid.clear()
        global_map = propagate.get_global_textmap()
        if not _wrapped(global_map):
            propagate.set_global_textmap(TrustedPropagator(_members(global_map)))
    return current


def _wrapped(propagator: Any) -> bool:
    """Is the check already in the path of ``propagator`` (through wrappers like the guard's)?"""
    seen = 0
    while propagator is not None and seen < 8:
        if isinstance(propagator, TrustedPropagator):
            return True
        propagator, seen = getattr(propagator, "inner", None), seen + 1
    return False


def _members(propagator: Any) -> list[Any]:
    """The propagators to wrap, flat (a check already inside a composite is unwrapped)."""
    out: list[Any] = []
    for member in sdk_access.propagator_members(propagator):
        out += member._members if isinstance(member, TrustedPropagator) else [member]
    return out


class TrustedPropagator(CompositePropagator):
    """The global propagator's members, and the attribution check after their ``extract``."""

    def __init__(self, members: list[Any]) -> None:
        super().__init__(members)
        self._members = members

    def extract(self, carrier: CarrierT, context: context_api.Context | None = None,
                getter: Getter[CarrierT] = default_getter) -> context_api.Context:
        base = context if context is not None else context_api.get_current()
        ctx = super().extract(carrier, base, getter=getter)
        try:
            return _check_ingress(base, ctx)
        except Exception:  # never break the caller's request: drop all inbound attribution
            log.exception("spanledger: checking inbound baggage failed; its attribution is "
                          "dropped")
            return _without_inbound(base, ctx, trust().attribution_keys)


def _inbound_keys(base: context_api.Context, ctx: context_api.Context,
                  keys: frozenset[str]) -> dict[str, Any]:
    before = baggage.get_all(base)
    after = baggage.get_all(ctx)
    return {k: v for k, v in after.items()
            if (k in keys or k == SIG) and before.get(k) != v}


def _restore(base: context_api.Context, ctx: context_api.Context,
             names: Iterable[str]) -> context_api.Context:
    before = baggage.get_all(base)
    for name in names:
        if name in before:
            ctx = baggage.set_baggage(name, before[name], ctx)
        else:
            ctx = baggage.remove_baggage(name, ctx)
    return ctx


def _without_inbound(base: context_api.Context, ctx: context_api.Context,
                     keys: frozenset[str]) -> context_api.Context:
    return context_api.set_value(_CHECKED, True, _restore(base, ctx, _inbound_keys(
        base, ctx, keys)))


def _check_ingress(base: context_api.Context, ctx: context_api.Context) -> context_api.Context:
    settings = trust()
    arrived = _inbound_keys(base, ctx, settings.attribution_keys)
    entries = {k: v for k, v in arrived.items() if k != SIG}
    if not entries:
        return context_api.set_value(_CHECKED, True, ctx)
    kept, dropped = settings.inbound(entries, baggage.get_all(ctx))
    _count(dropped, len(kept) if settings.mode == "signed" else 0)
    remove = list(dropped)
    if SIG in arrived and not kept:
        remove.append(SIG)  # a signature that vouches for nothing here goes too
    return context_api.set_value(_CHECKED, True, _restore(base, ctx, remove))


def _count(dropped: Mapping[str, str], verified: int) -> None:
    for reason in dropped.values():
        STATS.count(reason)
    if verified:
        STATS.count("verified", verified)


# -- in the processor: the backstop and the value check ------------------------------------

def _remote_parent(ctx: context_api.Context) -> bool:
    return trace_api.get_current_span(ctx).get_span_context().is_remote


def checked(own: dict[str, str], keys: tuple[tuple[str, str], ...], bag: Any,
            ctx: context_api.Context) -> dict[str, str]:
    """The attribution ``own`` (span attribute -> value) the processor read from ``bag``,
    minus what may not be copied: inbound values nothing vouches for when ``ctx`` is a
    remote parent's context that skipped the check at ingress, and invalid values always.

    Runs once per baggage object (the processor caches the result), never per span; the
    common case (a local context, values seen before) is a few dict lookups.
    """
    settings = _trust if _trust is not None else trust()
    if ctx.get(_CHECKED) is None:
        known = _known_untrusted(bag) if _untrusted else None
        if known:  # a span below one the backstop checked, sharing its baggage
            key_of = {attr: key for key, attr in keys}
            own = {attr: value for attr, value in own.items() if key_of[attr] not in known}
        elif _remote_parent(ctx):
            own = _unchecked_ingress(own, {attr: key for key, attr in keys}, bag, ctx,
                                     settings)
    valid = _valid
    bad = None
    for attr, value in own.items():
        if len(value) > MAX_VALUE_LENGTH:  # (never kept: the cache holds short values only)
            verdict = False
        else:
            verdict = valid.get((attr, value))
            if verdict is None:
                verdict = not settings.invalid(attr[len(sc.ATTR_PREFIX):], value)
                if len(valid) < _VALID_MAX:
                    valid[(attr, value)] = verdict
        if not verdict:
            bad = [*(bad or ()), attr]
    if bad is None:
        return own
    STATS.count("invalid", len(bad))
    if "invalid" not in _warned:
        _warned.add("invalid")
        log.warning("spanledger: attribution value(s) dropped as invalid (at most %d letters, "
                    "digits, space or . _ - : / @ + #%s): %s", MAX_VALUE_LENGTH,
                    "; teams from the closed list" if settings.teams is not None else "",
                    ", ".join(sorted(a[len(sc.ATTR_PREFIX):] for a in bad)))
    return {attr: value for attr, value in own.items() if attr not in bad}


#: (span attribute, value) -> valid under the installed settings (cleared by install());
#: attribution values repeat (a few teams, features, customers), the check need not
_valid: dict[tuple[str, str], bool] = {}
_VALID_MAX = 8192


def _unchecked_ingress(own: dict[str, str], key_of: Mapping[str, str], bag: Any,
                       ctx: context_api.Context, settings: BaggageTrust) -> dict[str, str]:
    """The backstop: a remote parent's baggage that no ingress check saw."""
    mine = ctx.get(_LOCAL) or {}
    entries = {key_of[attr]: value for attr, value in own.items()
               if mine.get(key_of[attr]) != value}  # type: ignore[attr-defined]
    if not entries:
        return own  # all of it set by attribute() here: it always wins
    STATS.count("unchecked_ingress")
    if "ingress" not in _warned:
        _warned.add("ingress")
        log.warning("spanledger: attribution baggage arrived without spanledger's ingress "
                    "check (the global propagator was replaced after spanledger was set up?); "
                    "it is checked on the server span only. Call "
                    "spanledger.processor.baggage_trust.install(None) after setting "
                    "propagators.")
    _, dropped = settings.inbound(entries, bag)
    # (an invalid value is left to the value check, which drops and counts it)
    _count({k: r for k, r in dropped.items() if r != "invalid"},
           len(entries) - len(dropped) if settings.mode == "signed" else 0)
    _remember_untrusted(bag, [k for k, r in dropped.items() if r != "invalid"])
    return {attr: value for attr, value in own.items()
            if dropped.get(key_of[attr]) in (None, "invalid")}


#: baggage objects the backstop found untrusted entries in: id -> (the baggage, those keys).
#: Spans below the server span share its baggage object, and ``attribute()`` building on
#: it must not carry the entries on. Bounded (oldest out): past that, best effort.
_untrusted: dict[int, tuple[Any, frozenset[str]]] = {}
_UNTRUSTED_MAX = 4096


def _remember_untrusted(bag: Any, keys: Iterable[str]) -> None:
    found = frozenset(keys)
    if not found:
        return
    with _lock:
        while len(_untrusted) >= _UNTRUSTED_MAX:
            _untrusted.pop(next(iter(_untrusted)))
        _untrusted[id(bag)] = (bag, found)


def _known_untrusted(bag: Any) -> frozenset[str]:
    hit = _untrusted.get(id(bag))
    return hit[1] if hit is not None and hit[0] is bag else frozenset()


# -- in attribute(): local, and signed -----------------------------------------------------

def local(ctx: context_api.Context, items: Iterable[tuple[str, str]],
          outer: context_api.Context | None = None) -> context_api.Context:
    """``ctx`` (with ``items`` just set in its baggage by ``attribute()`` on top of
    ``outer``) marked as this process's own attribution, and its attribution entries signed
    when a key is set.

    The mark travels with the context, never in the baggage: it tells the processor's own
    check (a span whose parent is remote) that these values were set here. Entries of the
    outer baggage the processor found untrusted are not carried on.
    """
    items = tuple(items)
    if outer is not None and _untrusted:
        residue = _known_untrusted(sdk_access.baggage_of(outer)) - {k for k, _ in items}
        for key in residue:
            ctx = baggage.remove_baggage(key, ctx)
    marked = {**(ctx.get(_LOCAL) or {}), **dict(items)}  # type: ignore[dict-item]
    ctx = context_api.set_value(_LOCAL, marked, ctx)
    settings = trust()
    if not settings.keys:
        return ctx
    bag = baggage.get_all(ctx)
    covered = settings.attribution_keys.union(k for k, _ in items)
    entries = {k: v for k, v in bag.items() if k in covered and isinstance(v, str) and v}
    sig = settings.sign(entries)
    return baggage.set_baggage(SIG, sig, ctx) if sig else ctx
