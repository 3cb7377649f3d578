"""The ``budget_alerts`` table: claim an alert, then deliver it, once.

ClickHouse has no compare-and-set, but it does deduplicate inserts that carry
the same ``insert_deduplication_token``. Claiming attempt N of an alert is an
insert of one row with the token ``claim:<alert id>:<N>`` and this
evaluator's ``Owner``: when two evaluators (two collectors, a collector and a
cron job) race, both insert, the engine keeps the first row and drops the
second, and both read the row back; only the evaluator named in it delivers.
Outcomes ('delivered', 'failed' + next attempt time) are appended by the owner.

What is guaranteed, given one store (an embedded store, one server, or one
shard's replicas):

- an alert is claimed once per attempt, so two evaluators never both send it;
- a failed delivery is retried (attempt N+1) after its backoff by whichever
  evaluator runs next, with the body of the first attempt;
- an evaluator that dies between claiming and recording the outcome leaves a
  claim without outcome; after ``LEASE`` another evaluator re-claims it. If the
  first one had already sent the message, the receiver sees it twice: both
  carry the same alert id (``X-Spanledger-Alert-Id``, ``id`` in the body) to
  drop the repeat. This window is the only at-least-once case.

The dedup window is the table's ``non_replicated_deduplication_window`` (or
``replicated_deduplication_window`` on a cluster) of 10,000 inserts; claims
are read before they are inserted, so only a race within that window relies on it.
On a sharded cluster each shard holds its own table: point every evaluator at
the same shard (or run one evaluator).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from spanledger.reports.queries import sql_str
from spanledger.store.base import Store, dedup_settings

TABLE = "budget_alerts"
CLAIMED, SUPERSEDED, DELIVERED, FAILED = "claimed", "superseded", "delivered", "failed"
#: a claim without outcome this old belongs to an evaluator that died: re-claim it
LEASE = dt.timedelta(minutes=5)
#: after this many attempts an alert stays failed (visible in `report budgets`)
MAX_ATTEMPTS = 10
_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class AlertKey:
    """What fires once: a threshold of a budget scope in a period, to one channel."""

    budget: str
    scope: str
    period_start: dt.date
    period_end: dt.date
    #: ``actual`` | ``forecasted`` | ``anomaly``
    kind: str
    threshold: Decimal
    channel: str

    @property
    def alert_id(self) -> str:
        text = "|".join((self.budget, self.scope, self.period_start.isoformat(),
                         self.period_end.isoformat(), self.kind, f"{self.threshold.normalize():f}",
                         self.channel))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class Alert:
    """An alert's rows folded: its latest attempt and where that attempt stands."""

    key: AlertKey
    attempt: int = 0
    #: state of the latest attempt: claimed | superseded | delivered | failed
    state: str = ""
    owner: str = ""
    claimed_at: dt.datetime = _NEVER
    next_attempt_at: dt.datetime = _NEVER
    spent: Decimal = Decimal(0)
    forecast: Decimal | None = None
    amount: Decimal = Decimal(0)
    payload: str = ""
    error: str = ""
    first_at: dt.datetime = _NEVER
    #: owner of each attempt's claim
    owners: dict[int, str] = field(default_factory=dict)

    def due(self, now: dt.datetime) -> bool:
        """Another attempt should be made now (failed and backed off, or an abandoned claim)."""
        if self.attempt >= MAX_ATTEMPTS:
            return False
        if self.state == FAILED:
            return now >= self.next_attempt_at
        return self.state == CLAIMED and now - self.claimed_at >= LEASE


_COLUMNS = ("AlertId", "Budget", "Scope", "PeriodStart", "PeriodEnd", "Kind", "Threshold",
            "Channel", "Attempt", "State", "Owner", "EventTime", "NextAttemptAt", "Spent",
            "Forecast", "Amount", "Payload", "Error")
_Q12 = Decimal("1e-12")
_Q6 = Decimal("1e-6")


def has_table(store: Store) -> bool:
    return bool(store.query(f"SELECT 1 FROM system.tables WHERE database = currentDatabase() "
                            f"AND name = {sql_str(TABLE)}"))


def _ts(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def load(store: Store, since: dt.date, budgets: Iterable[str] | None = None) -> dict[str, Alert]:
    """Alerts of periods ending on or after ``since``, by alert id."""
    where = f"PeriodEnd >= toDate({sql_str(since.isoformat())})"
    names = sorted(set(budgets)) if budgets is not None else None
    if names is not None:
        if not names:
            return {}
        where += f" AND Budget IN ({', '.join(sql_str(n) for n in names)})"
    rows = store.query(
        "SELECT AlertId, Budget, Scope, toString(PeriodStart), toString(PeriodEnd), Kind, "
        "toString(Threshold), Channel, Attempt, State, Owner, toString(EventTime), "
        "toString(NextAttemptAt), toString(Spent), toString(Forecast), toString(Amount), "
        f"Payload, Error FROM {TABLE} WHERE {where} ORDER BY AlertId, Attempt, EventTime")
    grouped: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    for r in rows:
        grouped[str(r[0])].append(r)
    return {aid: _fold(rs) for aid, rs in grouped.items()}


def _fold(rows: Sequence[tuple[object, ...]]) -> Alert:
    r0 = rows[0]
    key = AlertKey(str(r0[1]), str(r0[2]), dt.date.fromisoformat(str(r0[3])),
                   dt.date.fromisoformat(str(r0[4])), str(r0[5]), Decimal(str(r0[6])),
                   str(r0[7]))
    alert = Alert(key)
    rank = {CLAIMED: 0, SUPERSEDED: 0, FAILED: 1, DELIVERED: 2}
    for r in sorted(rows, key=lambda r: (int(r[8]), rank.get(str(r[9]), 0))):  # type: ignore[call-overload]
        attempt, state = int(r[8]), str(r[9])  # type: ignore[call-overload]
        at = _ts(r[11])
        if state in (CLAIMED, SUPERSEDED):
            if attempt in alert.owners:
                continue  # a second claim row can only come from outside the dedup window
            alert.owners[attempt] = str(r[10])
            alert.owner, alert.claimed_at = str(r[10]), at
            if attempt == 1:
                alert.first_at = at
                alert.payload = str(r[16])
                alert.spent = Decimal(str(r[13]))
                forecast = str(r[14])
                alert.forecast = None if forecast in ("", "\\N", "None") else Decimal(forecast)
                alert.amount = Decimal(str(r[15]))
        alert.attempt, alert.state = attempt, state
        if state == FAILED:
            alert.next_attempt_at, alert.error = _ts(r[12]), str(r[17])
    return alert


def _row(key: AlertKey, attempt: int, state: str, owner: str, now: dt.datetime, *,
         next_at: dt.datetime | None = None, spent: Decimal = Decimal(0),
         forecast: Decimal | None = None, amount: Decimal = Decimal(0), payload: str = "",
         error: str = "") -> dict[str, object]:
    return {
        "AlertId": key.alert_id, "Budget": key.budget, "Scope": key.scope,
        "PeriodStart": key.period_start, "PeriodEnd": key.period_end, "Kind": key.kind,
        "Threshold": key.threshold.quantize(_Q6), "Channel": key.channel, "Attempt": attempt,
        "State": state, "Owner": owner, "EventTime": now, "NextAttemptAt": next_at or _NEVER,
        "Spent": spent.quantize(_Q12),
        "Forecast": None if forecast is None else forecast.quantize(_Q12),
        "Amount": amount.quantize(_Q12), "Payload": payload, "Error": error[:1000],
    }


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        return sql_str(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    if isinstance(value, dt.date):
        return sql_str(value.isoformat())
    if isinstance(value, int | Decimal):
        return f"{value:f}" if isinstance(value, Decimal) else str(value)
    return sql_str(str(value))


def _insert(store: Store, row: dict[str, object], token: str) -> None:
    """One row, as an ``INSERT ... VALUES`` with its dedup token.

    A literal statement rather than an Arrow insert: the embedded engine's
    Arrow inserts find their data by variable name in the calling frames,
    which two evaluator threads inserting at once would mix up.
    """
    settings = ", ".join(f"{k} = {_literal(v)}" for k, v in dedup_settings(token).items())
    values = ", ".join(_literal(row[c]) for c in _COLUMNS)
    store.command(f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) SETTINGS {settings} "
                  f"VALUES ({values})")


def claim(store: Store, key: AlertKey, attempt: int, owner: str, now: dt.datetime, *,
          superseded: bool = False, spent: Decimal = Decimal(0),
          forecast: Decimal | None = None, amount: Decimal = Decimal(0),
          payload: str = "") -> None:
    """Insert the claim of ``attempt``; at most one claim per attempt survives (dedup token)."""
    row = _row(key, attempt, SUPERSEDED if superseded else CLAIMED, owner, now, spent=spent,
               forecast=forecast, amount=amount, payload=payload)
    _insert(store, row, f"claim:{key.alert_id}:{attempt}")


def owners(store: Store, alert_ids: Sequence[str], attempts: dict[str, int]) -> dict[str, str]:
    """Who holds each alert's claim of the given attempt (read back after claiming)."""
    if not alert_ids:
        return {}
    ids = ", ".join(sql_str(a) for a in alert_ids)
    rows = store.query(
        f"SELECT AlertId, Attempt, Owner FROM {TABLE} WHERE AlertId IN ({ids}) "
        f"AND State IN ({sql_str(CLAIMED)}, {sql_str(SUPERSEDED)}) ORDER BY EventTime, Owner")
    out: dict[str, str] = {}
    for aid, attempt, owner in rows:
        if attempts.get(str(aid)) == int(attempt) and str(aid) not in out:
            out[str(aid)] = str(owner)
    return out


def record(store: Store, key: AlertKey, attempt: int, owner: str, now: dt.datetime,
           delivered: bool, error: str = "", next_at: dt.datetime | None = None) -> None:
    """The owner's outcome of ``attempt`` (its own token: a replayed insert is a no-op)."""
    state = DELIVERED if delivered else FAILED
    row = _row(key, attempt, state, owner, now, next_at=next_at, error=error)
    _insert(store, row, f"{state}:{key.alert_id}:{attempt}")


def retry_at(attempt: int, now: dt.datetime) -> dt.datetime:
    """Backoff between evaluations: 1, 2, 4 ... minutes after attempt N failed, at most 1 h."""
    return now + dt.timedelta(seconds=min(60 * 2 ** max(attempt - 1, 0), 3600))
