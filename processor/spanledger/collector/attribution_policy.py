"""Who may say which team: each span's attribution checked against its token, at conversion.

The intake stamps every resource with the name of the token its request
presented (``spanledger.auth.token``, :mod:`.receivers.token_stamp`); the
conversion workers read attribution anyway, so the check happens there, once
per resource and then per span only for tokens that are bound at all:

- ``service.name`` the token may not send: the resource is stored as service
  ``(unverified)``, the claimed name kept as ``spanledger.service.claimed``;
- ``spanledger.team`` / ``spanledger.cost_center`` the token may not claim: stored as
  ``(unverified)``, the claim kept as ``spanledger.team.claimed`` /
  ``spanledger.cost_center.claimed``;
- either way the span gets ``spanledger.attribution.verified = false`` and is counted
  (``spanledger_collector_spans_unverified_total``).

Decision: an unverified claim becomes ``(unverified)``, not the token's own team.
The spend stays visible as its own report row, nobody's invoice moves without
someone deciding to move it, and the stamped token name says who sent it. A
resource without a stamp (spans spooled before a tokens file was configured) is
unverified too: nothing vouches for it. Feature, customer and user are not
bound: they split a team's own spend and move no money between teams.

The policy is plain data (grants by token name), so it is pickled to the
conversion workers with each job, like the prices file's path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from spanledger import semconv as sc
from spanledger.collector.tokens import Grant, Patterns

TEAM = sc.attribution_attr("team")
COST_CENTER = sc.attribution_attr("cost_center")
_VERIFIED, _UNVERIFIED = sc.ATTRIBUTION_VERIFIED, sc.UNVERIFIED
_TEAM_CLAIMED, _CC_CLAIMED = sc.TEAM_CLAIMED, sc.COST_CENTER_CLAIMED
#: a resource nothing vouches for may claim nothing (but the empty claim)
NOTHING = Grant(Patterns(), Patterns(), Patterns())

SpanCheck = Callable[[dict[str, str]], None]


class AttributionPolicy:
    """Called with a resource's attributes (as strings); returns the check for its spans,
    or None when its token may claim anything (no per-span work)."""

    __slots__ = ("grants",)

    def __init__(self, grants: Mapping[str, Grant]) -> None:
        self.grants = dict(grants)

    def __call__(self, resource: dict[str, str]) -> SpanCheck | None:
        name = resource.get(sc.AUTH_TOKEN)
        grant = self.grants.get(name, NOTHING) if name else NOTHING
        service = resource.get(sc.SERVICE_NAME, "")
        service_ok = grant.services.allows(service)
        if not service_ok:
            resource[sc.SERVICE_NAME] = _UNVERIFIED
            resource[sc.SERVICE_CLAIMED] = service
        if service_ok and grant.teams.any and grant.cost_centers.any:
            return None
        return _span_check(grant.teams, grant.cost_centers, not service_ok)


def _span_check(teams: Patterns, cost_centers: Patterns, service_bad: bool) -> SpanCheck:
    def check(attrs: dict[str, str]) -> None:
        if _VERIFIED in attrs or _TEAM_CLAIMED in attrs or _CC_CLAIMED in attrs:
            for key in (_VERIFIED, _TEAM_CLAIMED, _CC_CLAIMED):  # only we say so
                attrs.pop(key, None)
        bad = service_bad
        team = attrs.get(TEAM)
        if team and not teams.allows(team):
            attrs[_TEAM_CLAIMED] = team
            attrs[TEAM] = _UNVERIFIED
            bad = True
        cost_center = attrs.get(COST_CENTER)
        if cost_center and not cost_centers.allows(cost_center):
            attrs[_CC_CLAIMED] = cost_center
            attrs[COST_CENTER] = _UNVERIFIED
            bad = True
        if bad:
            attrs[_VERIFIED] = "false"

    return check


def unverified_rows(table: pa.Table) -> int:
    """Rows of a converted ``otel_traces`` table flagged unverified (vectorized)."""
    if table.num_rows == 0:
        return 0
    flags = pc.map_lookup(table["SpanAttributes"], _VERIFIED, "first")
    return int(pc.sum(pc.equal(flags, "false")).as_py() or 0)


__all__ = ["AttributionPolicy", "SpanCheck", "unverified_rows"]
