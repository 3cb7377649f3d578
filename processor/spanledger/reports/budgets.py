"""The budgets file: budgets as data, from hand-edited YAML.

Loaded through :mod:`spanledger.yamlconf`, so a typo is reported as
``file:line: key: problem`` (exit 2) and never as a silently missing budget.
Example with every key: ``collector-config/budgets.example.yaml``.

One file serves two readers:

- ``report spend --model budget`` (and the HTML budget-burn chart) read the
  ``monthly:`` entries keyed by the file's ``by`` dimensions
  (:func:`load_budgets`, the original shape of this file, still valid as is);
- the budget evaluator (collector schedule, ``spanledger alerts check``,
  ``report budgets``, the services' kill switch) reads every entry
  (:func:`load_budget_file`): any combination of team, feature, customer,
  environment, model, ... as a filter, optionally ``per`` dimension (one scope
  per value, e.g. per customer), a period (month, week, day, rolling N days),
  thresholds on actual and forecasted spend, a per-agent-run limit, and the
  channels alerts go to.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf
from spanledger.reports.chargeback import ALERT_PERCENTS, DEFAULT_HARD_STOP, UNATTRIBUTED
from spanledger.reports.queries import DIMENSIONS

#: default thresholds on forecasted period-end spend (the AWS / GCP convention)
DEFAULT_FORECASTED: tuple[Decimal, ...] = (Decimal(100),)
PERIOD_KINDS = ("month", "week", "day")
ON_EXCEED = ("raise", "log")
CHANNEL_TYPES = ("webhook", "slack", "log")
#: the channel every file has without declaring it: a log line (stdout for the CLI)
LOG_CHANNEL = "log"
_ROLLING = re.compile(r"^rolling\s+(\d+)\s*(days?|d)?$")
_BUDGET_KEYS = frozenset({
    "name", "monthly", "amount", "period", "per", "thresholds", "hard_stop_percent",
    "max_run_usd", "on_exceed", "enforce_hard_stop", "notify", *DIMENSIONS})


# -- the report shape (report spend --model budget) ------------------------------------------

@dataclass(frozen=True, slots=True)
class Budget:
    monthly: Decimal
    hard_stop_percent: Decimal


@dataclass(frozen=True, slots=True)
class Budgets:
    """Monthly budgets keyed by a tuple of group values in the order of ``by``."""

    file: str
    by: tuple[str, ...]
    entries: dict[tuple[str, ...], Budget]


# -- the full shape (evaluator) ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BudgetPeriod:
    """A calendar month / ISO week / UTC day, or the last ``days`` days (rolling)."""

    kind: str
    days: int = 0

    @property
    def label(self) -> str:
        return f"rolling {self.days} days" if self.kind == "rolling" else self.kind


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """One budget of the file, defaults applied."""

    name: str
    #: (dimension, value) the spend must match; value "" = spend without that tag
    filters: tuple[tuple[str, str], ...]
    #: dimensions that split the budget: one scope (same amount) per value seen
    per: tuple[str, ...]
    amount: Decimal
    period: BudgetPeriod
    #: percent of ``amount`` reached by actual spend (at >=)
    actual: tuple[Decimal, ...]
    #: percent of ``amount`` reached by the forecasted period-end spend (at >=)
    forecasted: tuple[Decimal, ...]
    hard_stop_percent: Decimal
    max_run_usd: Decimal | None
    on_exceed: str
    #: services refuse calls in this scope once actual spend reaches the hard stop
    enforce_hard_stop: bool
    notify: tuple[str, ...]
    #: written with ``monthly:`` (the report shape): keyed by the file's ``by``
    monthly: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class Channel:
    """Where alerts go: a generic webhook (HMAC-signed), a Slack incoming webhook, a log."""

    name: str
    kind: str
    url: str | None = None
    #: shared secret of the HMAC-SHA256 signature (webhook); None: unsigned
    secret: str | None = field(default=None, repr=False)
    #: HTTP attempts per delivery, with exponential backoff from ``backoff_s``
    tries: int = 3
    backoff_s: Decimal = Decimal(1)
    timeout_s: Decimal = Decimal(10)
    #: why the channel cannot send (an unset environment variable): an error only once a
    #: budget notifies it, so an example file with unused channels loads anywhere
    problem: yamlconf.ConfigError | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """Thresholds of the anomaly detectors (see :mod:`spanledger.budgets.anomalies`)."""

    baseline_days: int = 28
    #: a day is a spike when its robust z-score AND its ratio to the expected value reach these
    spike_z: Decimal = Decimal(5)
    spike_ratio: Decimal = Decimal(3)
    #: a series creeps when its robust 28-day trend grew by this factor
    creep_ratio: Decimal = Decimal("2.5")
    #: an agent run is anomalous at this multiple of its feature's p95 run cost
    run_ratio: Decimal = Decimal(3)
    #: deviations smaller than this many USD are never reported (noise on tiny series)
    min_usd: Decimal = Decimal("0.10")
    dimensions: tuple[str, ...] = ("team", "feature", "customer", "model")
    #: channels anomaly alerts go to (empty: anomalies are reported, not alerted)
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BudgetFile:
    file: str
    by: tuple[str, ...] | None
    budgets: tuple[BudgetSpec, ...]
    channels: dict[str, Channel]
    report_url: str | None = None
    anomalies: AnomalySettings = field(default_factory=AnomalySettings)

    def budget(self, name: str) -> BudgetSpec:
        return next(b for b in self.budgets if b.name == name)


# -- parsing ---------------------------------------------------------------------------------

def parse_by(node: yamlconf.Node, key: str = "by") -> tuple[str, ...]:
    """A list of dimensions (or ``team,feature``) under ``key``: ``by``, ``per``, ...."""
    child = node.child(key)
    if child.is_mapping():
        raise node.error("expected a list of dimensions or 'team,feature'", key=key)
    try:
        names = node.get_str_list(key)
    except yamlconf.ConfigError:
        names = [n.strip() for n in (node.get_str(key, required=True) or "").split(",")]
    if not names:
        raise node.error("must name at least one dimension", key=key)
    for name in names:
        if name not in DIMENSIONS:
            raise node.error(f"unknown dimension {name!r} (expected some of: "
                             f"{', '.join(DIMENSIONS)})", key=key)
    if len(set(names)) != len(names):
        raise node.error("dimension repeated", key=key)
    return tuple(names)


def keyed_by(root: yamlconf.Node, dims: tuple[str, ...] | None,
             what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The file's ``by`` and the report's dimensions; a file keyed otherwise is an error."""
    by = parse_by(root)
    dims = by if dims is None else dims
    if set(by) != set(dims):
        raise root.error(f"{what} are keyed by {','.join(by)} but the report is "
                         f"--by {','.join(dims)}; run with --by {','.join(by)}", key="by")
    return by, dims


def monthly_entries(root: yamlconf.Node, list_key: str, by: tuple[str, ...],
                    dims: tuple[str, ...], extra: set[str], noun: str
                    ) -> list[tuple[tuple[str, ...], Decimal, yamlconf.Node]]:
    """Items of ``list_key``: (group key in the order of ``dims``, monthly USD > 0, item).

    Each item names every dimension of ``by`` (``(unattributed)`` for untagged
    spend) and ``monthly``; a group named twice is an error. (The fixed-price
    file's shape: one amount per report group.)
    """
    out: list[tuple[tuple[str, ...], Decimal, yamlconf.Node]] = []
    seen: set[tuple[str, ...]] = set()
    for item in root.list(list_key, required=True):
        if not item.is_mapping():
            raise item.error("expected a mapping with the group keys and 'monthly'")
        item.check_keys({*by, "monthly", *extra})
        values = {}
        for d in by:
            value = item.get_str(d, required=True)
            assert value is not None
            values[d] = "" if value == UNATTRIBUTED else value
        key = tuple(values[d] for d in dims)
        monthly = item.get_decimal("monthly", required=True, minimum=Decimal(0))
        assert monthly is not None
        if monthly == 0:
            raise item.error("must be > 0", key="monthly")
        if key in seen:
            raise item.error(f"duplicate {noun} for {'/'.join(key)}")
        seen.add(key)
        out.append((key, monthly, item))
    return out


def _percents(node: yamlconf.Node, key: str) -> tuple[Decimal, ...]:
    out = []
    for text in node.get_str_list(key):
        try:
            value = Decimal(text.strip().rstrip("%"))
        except ArithmeticError:
            raise node.error(f"expected percents such as 80, got {text!r}", key=key) from None
        if not value.is_finite() or value <= 0:
            raise node.error(f"expected percents > 0, got {text!r}", key=key)
        out.append(value)
    if len(set(out)) != len(out):
        raise node.error("threshold repeated", key=key)
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class _Defaults:
    hard_stop: Decimal
    actual: tuple[Decimal, ...] | None
    forecasted: tuple[Decimal, ...]
    notify: tuple[str, ...]


def _thresholds(node: yamlconf.Node, hard_stop: Decimal, inherited: _Defaults | None
                ) -> tuple[tuple[Decimal, ...] | None, tuple[Decimal, ...]]:
    """(actual, forecasted) of a ``thresholds:`` block; None actual = 50/80/100 + hard stop."""
    actual = inherited.actual if inherited else None
    forecasted = inherited.forecasted if inherited else DEFAULT_FORECASTED
    if node.has("thresholds"):
        t = node.child("thresholds")
        if not t.is_mapping():
            raise t.error("expected a mapping with 'actual' and/or 'forecasted' (lists of %)")
        t.check_keys({"actual", "forecasted"})
        if t.has("actual"):
            actual = _percents(t, "actual")
        if t.has("forecasted"):
            forecasted = _percents(t, "forecasted")
    return actual, forecasted


def _period(item: yamlconf.Node) -> BudgetPeriod:
    text = (item.get_str("period", required=True) or "").strip().lower()
    if text in PERIOD_KINDS:
        return BudgetPeriod(text)
    m = _ROLLING.match(text)
    if m:
        days = int(m.group(1))
        if not 1 <= days <= 366:
            raise item.error(f"rolling days must be 1..366, got {days}", key="period")
        return BudgetPeriod("rolling", days)
    raise item.error(f"expected month, week, day or 'rolling N days', got {text!r}",
                     key="period")


def _choice(node: yamlconf.Node, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = node.get_str(key, default)
    assert value is not None
    if value not in allowed:
        raise node.error(f"expected one of {', '.join(allowed)}, got {value!r}", key=key)
    return value


def _names(node: yamlconf.Node, key: str) -> tuple[str, ...]:
    if not node.has(key):
        return ()
    try:
        return tuple(node.get_str_list(key))
    except yamlconf.ConfigError:
        text = node.get_str(key) or ""
        return tuple(n.strip() for n in text.split(",") if n.strip())


def _secret(node: yamlconf.Node, key: str) -> tuple[str | None, yamlconf.ConfigError | None]:
    """``key`` inline, or ``key_env``: the variable holding it (secrets stay out of files)."""
    env_key = f"{key}_env"
    if node.has(key) and node.has(env_key):
        raise node.error(f"give {key} or {env_key}, not both", key=env_key)
    if node.has(env_key):
        var = node.get_str(env_key)
        assert var is not None
        value = os.environ.get(var)
        if not value:
            return None, node.error(f"environment variable {var} is not set", key=env_key)
        return value, None
    return node.get_str(key), None


def _channels(root: yamlconf.Node) -> dict[str, Channel]:
    out = {LOG_CHANNEL: Channel(LOG_CHANNEL, "log")}
    if not root.has("channels"):
        return out
    section = root.child("channels")
    if not section.is_mapping():
        raise section.error("expected a mapping: channel name -> settings")
    for name, node in section.items():
        if not node.is_mapping():
            raise node.error("expected a mapping with 'type' and 'url'")
        node.check_keys({"type", "url", "url_env", "secret", "secret_env", "tries",
                         "backoff_s", "timeout_s"})
        kind = _choice(node, "type", CHANNEL_TYPES, "")
        url, problem = _secret(node, "url")
        if kind != "log" and not url and problem is None:
            raise node.error("required key is missing (or url_env)", key="url")
        if kind == "log" and (url or node.has("secret") or node.has("secret_env")):
            raise node.error("a log channel takes no url or secret")
        if url and not url.startswith(("http://", "https://")):
            raise node.error(f"expected an http(s):// URL, got {url!r}", key="url")
        secret, secret_problem = _secret(node, "secret")
        problem = problem or secret_problem
        if (secret or node.has("secret_env")) and kind != "webhook":
            raise node.error("only webhook channels are signed", key="secret")
        tries = node.get_int("tries", 3, minimum=1)
        backoff = node.get_decimal("backoff_s", Decimal(1), maximum=Decimal(600))
        timeout = node.get_decimal("timeout_s", Decimal(10), minimum=Decimal("0.1"),
                                   maximum=Decimal(300))
        assert tries is not None and backoff is not None and timeout is not None
        out[name] = Channel(name, kind, url, secret, tries, backoff, timeout, problem)
    return out


def _anomalies(root: yamlconf.Node) -> AnomalySettings:
    if not root.has("anomalies"):
        return AnomalySettings()
    node = root.child("anomalies")
    if not node.is_mapping():
        raise node.error("expected a mapping of anomaly thresholds")
    node.check_keys({"baseline_days", "spike_z", "spike_ratio", "creep_ratio", "run_ratio",
                     "min_usd", "dimensions", "notify"})
    d = AnomalySettings()
    days = node.get_int("baseline_days", d.baseline_days, minimum=14)
    one = Decimal(1)
    values = {k: node.get_decimal(k, getattr(d, k), minimum=one)
              for k in ("spike_z", "spike_ratio", "creep_ratio", "run_ratio")}
    min_usd = node.get_decimal("min_usd", d.min_usd)
    dims = parse_by(node, "dimensions") if node.has("dimensions") else d.dimensions
    assert days is not None and min_usd is not None
    return AnomalySettings(baseline_days=days, min_usd=min_usd, dimensions=dims,
                           notify=_names(node, "notify"), **values)  # type: ignore[arg-type]


def _budget(item: yamlconf.Node, by: tuple[str, ...] | None, defaults: _Defaults,
            index: int) -> BudgetSpec:
    if not item.is_mapping():
        raise item.error("expected a mapping with the filter keys and 'monthly' or 'amount'")
    item.check_keys(_BUDGET_KEYS)
    monthly = item.has("monthly")
    if monthly and (item.has("amount") or item.has("period")):
        raise item.error("give monthly, or amount with period, not both", key="monthly")
    if not monthly and not item.has("amount"):
        raise item.error("required key is missing (or amount with period)", key="monthly")
    amount_key = "monthly" if monthly else "amount"
    amount = item.get_decimal(amount_key, required=True, minimum=Decimal(0))
    assert amount is not None
    if amount == 0:
        raise item.error("must be > 0", key=amount_key)
    period = BudgetPeriod("month") if monthly else _period(item)
    dims = [d for d in DIMENSIONS if item.has(d)]
    if monthly and by is not None:
        for d in by:  # the report shape: every `by` dimension, nothing else
            item.get_str(d, required=True)
        extra = [d for d in dims if d not in by]
        if extra:
            raise item.error(f"monthly budgets are keyed by {','.join(by)} (the file's `by`); "
                             "use amount and period for other scopes", key=extra[0])
        dims = list(by)
    filters = []
    for d in dims:
        value = item.get_str(d, required=True)
        assert value is not None
        filters.append((d, "" if value == UNATTRIBUTED else value))
    per = parse_by(item, "per") if item.has("per") else ()
    clash = [d for d in per if item.has(d)]
    if clash:
        raise item.error("a dimension cannot be both a filter and in per", key=clash[0])
    hard_stop = item.get_decimal("hard_stop_percent", defaults.hard_stop,
                                 minimum=Decimal("0.000001"))
    assert hard_stop is not None
    actual, forecasted = _thresholds(item, hard_stop, defaults)
    if actual is None:
        actual = tuple(sorted({*ALERT_PERCENTS, hard_stop}))
    max_run = item.get_decimal("max_run_usd", None)
    if max_run is not None and max_run <= 0:
        raise item.error("must be > 0", key="max_run_usd")
    name = item.get_str("name") or "/".join(
        UNATTRIBUTED if v == "" else v for _, v in filters) or f"budget-{index + 1}"
    notify = _names(item, "notify") if item.has("notify") else defaults.notify
    return BudgetSpec(
        name=name, filters=tuple(filters), per=per, amount=amount, period=period,
        actual=actual, forecasted=forecasted, hard_stop_percent=hard_stop,
        max_run_usd=max_run, on_exceed=_choice(item, "on_exceed", ON_EXCEED, "raise"),
        enforce_hard_stop=bool(item.get_bool("enforce_hard_stop", False)),
        notify=notify, monthly=monthly, line=item.line)


def _check_notify(node: yamlconf.Node, names: tuple[str, ...],
                  channels: dict[str, Channel]) -> None:
    for name in names:
        channel = channels.get(name)
        if channel is None:
            raise node.error(f"unknown channel {name!r} (defined: "
                             f"{', '.join(sorted(channels))})", key="notify")
        if channel.problem is not None:
            raise channel.problem


def load_budget_file(path: str | Path) -> BudgetFile:
    """Every budget, channel and anomaly setting of the file, defaults applied."""
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'budgets'")
    root.check_keys({"by", "hard_stop_percent", "thresholds", "notify", "report_url",
                     "channels", "anomalies", "budgets"})
    by = parse_by(root) if root.has("by") else None
    hard_stop = root.get_decimal("hard_stop_percent", DEFAULT_HARD_STOP,
                                 minimum=Decimal("0.000001"))
    assert hard_stop is not None
    actual, forecasted = _thresholds(root, hard_stop, None)
    defaults = _Defaults(hard_stop, actual, forecasted, _names(root, "notify") or (LOG_CHANNEL,))
    channels = _channels(root)
    budgets: list[BudgetSpec] = []
    for i, item in enumerate(root.list("budgets", required=True)):
        spec = _budget(item, by, defaults, i)
        if any(b.name == spec.name for b in budgets):
            raise item.error(f"duplicate budget for {spec.name}")
        _check_notify(item, spec.notify, channels)
        budgets.append(spec)
    anomalies = _anomalies(root)
    if anomalies.notify:
        _check_notify(root.child("anomalies"), anomalies.notify, channels)
    if root.has("notify"):
        _check_notify(root, defaults.notify, channels)
    return BudgetFile(str(path), by, tuple(budgets), channels, root.get_str("report_url"),
                      anomalies)


def load_budgets(path: str | Path, dims: tuple[str, ...] | None = None) -> Budgets:
    """The ``monthly:`` budgets for the report's ``--by`` dimensions (report spend, HTML chart).

    The file must name its ``by``, and a file keyed otherwise than the report
    is an error. ``dims`` None: take the file's own ``by``. Budgets written
    with ``amount:`` and ``period:`` are the evaluator's only.
    """
    full = load_budget_file(path)
    root = yamlconf.load(path)
    if full.by is None:
        raise root.error("required key is missing", key="by")
    by = full.by
    dims = by if dims is None else dims
    if set(by) != set(dims):
        raise root.error(f"budgets are keyed by {','.join(by)} but the report is "
                         f"--by {','.join(dims)}; run with --by {','.join(by)}", key="by")
    entries: dict[tuple[str, ...], Budget] = {}
    for spec in full.budgets:
        if not spec.monthly:
            continue
        values = dict(spec.filters)
        key = tuple(values[d] for d in dims)
        if key in entries:
            raise yamlconf.ConfigError(full.file, spec.line, None,
                                       f"duplicate budget for {'/'.join(key)}")
        entries[key] = Budget(spec.amount, spec.hard_stop_percent)
    return Budgets(str(path), dims, entries)
