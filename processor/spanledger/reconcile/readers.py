"""Read provider exports into bill lines, following the entries of :mod:`.formats`.

Two interpreters, one per file kind: paged JSON reports (OpenAI, Anthropic) and
FOCUS CSV (AWS, Azure, Google Cloud). A file's format is recognised by its
content. Whatever cannot be read is an :class:`~.jsonlines.ExportError` naming
the file, the line and the field (exit code 2); money is Decimal all the way
(Anthropic's cents are divided by 100 exactly).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spanledger.reconcile import formats as fm
from spanledger.reconcile.jsonlines import ExportError, Located, loads
from spanledger.reports.model_keys import catalog_model

HUNDRED = Decimal(100)
USD = "usd"


@dataclass(frozen=True, slots=True)
class BillLine:
    """One amount or usage count from a provider export, with where it came from."""

    source: str
    day: dt.date
    #: genai-prices provider id (``openai``, ``anthropic``, ``aws``, ``azure``, ``google``)
    provider: str
    #: the model as the export names it (after a dialect's rewrite); "" for non-model charges
    model: str
    #: one of :data:`~.formats.TOKEN_TYPES`, ``requests`` or ``all``
    token_type: str
    tier: str = "standard"
    amount: Decimal | None = None
    tokens: int | None = None
    requests: int | None = None
    #: a priced variant of the token type ("1h": Anthropic's one-hour cache writes)
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Export:
    """One file: its format and the lines it holds."""

    file: str
    format: str
    title: str
    provider: str
    kind: fm.Kind
    covers_embeddings: bool
    lines: tuple[BillLine, ...]
    #: rows of other services (FOCUS) left out; notes about what was read
    skipped: int = 0
    notes: tuple[str, ...] = ()
    digest: str = ""
    days: frozenset[dt.date] = field(default_factory=frozenset)


# -- JSON reports ----------------------------------------------------------------------

def _get(obj: Mapping[str, Any], path: str) -> Any:
    """``a.b.c`` inside nested objects; a missing step is None.

    Anthropic's token types contain dots (``cache_creation.ephemeral_5m_input_tokens``)
    and are values, never paths; its usage report nests ``cache_creation`` as an object.
    """
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _pages(doc: Any, file: str) -> list[Located]:
    """One page (``{"data": [...]}``) or a list of pages (every page of a paged report)."""
    pages = doc if isinstance(doc, list) else [doc]
    for page in pages:
        if not isinstance(page, Located) or not isinstance(page.get("data"), list):
            line = page.line if isinstance(page, Located) else None
            raise ExportError(file, line, "data", "expected a report page with a 'data' list "
                              "of time buckets (or a list of such pages)")
    return pages


def _results(pages: Sequence[Located]) -> Iterator[tuple[Located, Located]]:
    for page in pages:
        for bucket in page["data"]:
            if isinstance(bucket, Located):
                for result in bucket.get("results") or []:
                    if isinstance(result, Located):
                        yield bucket, result


def detect_json(doc: Any, file: str) -> fm.JsonFormat:
    """The format of a JSON report, from its first result's fields."""
    pages = _pages(doc, file)
    first = next(_results(pages), None)
    if first is None:
        raise ExportError(file, None, None, "the report has no results (an empty period?)")
    result = first[1]
    for f in fm.JSON_FORMATS:
        if f.result_object is not None and result.get("object") == f.result_object:
            return f
    for f in fm.JSON_FORMATS:
        if f.result_object is None and f.signature <= result.keys():
            return f
    names = ", ".join(f.name for f in fm.JSON_FORMATS)
    raise ExportError(file, result.line, None,
                      f"cannot tell which provider export this is (expected one of: {names})")


def _bucket_day(bucket: Located, f: fm.JsonFormat, file: str) -> dt.date:
    value = bucket.get(f.bucket_start)
    try:
        if f.time == "unix":
            if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                raise ValueError
            return dt.datetime.fromtimestamp(int(value), dt.UTC).date()
        text = str(value).replace("Z", "+00:00")
        stamp = dt.datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            raise ValueError
        return stamp.astimezone(dt.UTC).date()
    except (ValueError, OverflowError, OSError):
        kind = "Unix seconds" if f.time == "unix" else "an RFC 3339 time"
        raise ExportError(file, bucket.line, f.bucket_start,
                          f"expected {kind}, got {value!r}") from None


def _decimal(value: Any, file: str, line: int, path: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ExportError(file, line, path, f"expected a number, got {value!r}")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ExportError(file, line, path, f"expected a number, got {value!r}") from None
    if not out.is_finite():
        raise ExportError(file, line, path, f"expected a finite number, got {value!r}")
    return out


def _count(value: Any, file: str, line: int, path: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExportError(file, line, path, f"expected a token count, got {value!r}")
    return value


def _json_line(f: fm.JsonFormat, day: dt.date, r: Located, file: str) -> BillLine:
    """One result as one bill line (usage results are split per token type by the caller)."""
    source = f"{file}:{r.line}"
    amount = None
    if f.amount is not None:
        amount = _decimal(_get(r, f.amount), file, r.line, f.amount)
        if f.amount_unit == "cents":
            amount /= HUNDRED
        currency = _get(r, f.currency) if f.currency else USD
        if str(currency).lower() != USD:
            raise ExportError(file, r.line, f.currency, f"only USD bills are supported, "
                              f"got {currency!r}")
    tier_value = _get(r, f.tier) if f.tier else None
    tier = f.tiers.get(tier_value, str(tier_value)) if tier_value is not None else "standard"
    model, token_type = "", fm.ALL
    if f.line_item is not None:
        text = _get(r, f.line_item.path)
        if not isinstance(text, str) or not text.strip():
            raise ExportError(file, r.line, f.line_item.path, "no line item: export the costs "
                              "with group_by=line_item so each amount names its model")
        m = f.line_item.pattern.match(text)
        if m is None:  # a charge that is not a model's tokens: kept whole, under its own name
            return BillLine(source, day, f.provider, text.strip(), fm.ALL, tier, amount)
        model = m["model"].strip()
        if m["type"]:
            token_type = f.line_item.types[m["type"].lower()]
        if m["tier"]:
            tier = f.line_item.tiers[m["tier"].lower()]
    if f.model is not None:
        value = _get(r, f.model)
        model = value.strip() if isinstance(value, str) else ""
    if f.token_type is not None:
        raw = _get(r, f.token_type)
        if raw is None:  # web search, code execution: charged per request, no model
            token_type = fm.REQUESTS
            model = model or str(_get(r, "cost_type") or "")
        else:
            token_type = f.token_types.get(str(raw), fm.ALL)
    token_type, _, variant = token_type.partition(":")
    if not model and f.kind == "cost" and token_type != fm.REQUESTS:
        raise ExportError(file, r.line, f.model or "model", "no model: request the report "
                          "grouped by description (model and token type per amount)")
    return BillLine(source, day, f.provider, model, token_type, tier, amount, variant=variant)


def read_json(doc: Any, file: str, f: fm.JsonFormat) -> list[BillLine]:
    lines: list[BillLine] = []
    for bucket, r in _results(_pages(doc, file)):
        if f.result_object is not None and r.get("object") not in (None, f.result_object):
            raise ExportError(file, r.line, "object", f"expected {f.result_object!r} results in "
                              f"a {f.name} report, got {r.get('object')!r}")
        day = _bucket_day(bucket, f, file)
        line = _json_line(f, day, r, file)
        if not f.tokens:
            lines.append(line)
            continue
        if not line.model:
            raise ExportError(file, r.line, f.model, "no model: request the usage grouped by "
                              "model")
        for typed, terms in f.tokens.items():
            count = sum(sign * _count(_get(r, path), file, r.line, path) for sign, path in terms)
            if count < 0:
                raise ExportError(file, r.line, typed, f"negative token count {count}")
            token_type, _, variant = typed.partition(":")
            lines.append(BillLine(line.source, day, line.provider, line.model, token_type,
                                  line.tier, tokens=count, variant=variant))
        if f.requests is not None:
            count = _count(_get(r, f.requests), file, r.line, f.requests)
            if count:
                lines.append(BillLine(line.source, day, line.provider, line.model, fm.REQUESTS,
                                      line.tier, requests=count))
    return lines


# -- FOCUS CSV ---------------------------------------------------------------------------

FOCUS_REQUIRED = ("ChargePeriodStart", "BilledCost", "BillingCurrency", "ServiceName",
                  "ConsumedQuantity", "ConsumedUnit")


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def rewrite_model(name: str, provider: str, rewrites: Sequence[fm.Rewrite]) -> str:
    """A cloud's spelling of a model -> the first candidate genai-prices knows, else the name."""
    for rw in rewrites:
        m = rw.pattern.match(name)
        if m is None:
            continue
        values = {k: (v or "").lower() for k, v in m.groupdict().items()}
        values["slug"] = _slug(name)
        for template in rw.templates:
            try:
                candidate = template.format(**values).replace("--", "-").strip("-")
            except KeyError:
                continue
            if catalog_model(provider, candidate) is not None:
                return candidate
    return name


def _focus_day(text: str, file: str, line: int) -> dt.date:
    try:
        stamp = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(file, line, "ChargePeriodStart",
                          f"expected an ISO 8601 time like 2026-11-03T00:00:00Z, got {text!r}")\
            from None
    return (stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp).date()


def read_focus(text: str, file: str) -> tuple[list[BillLine], int, list[str]]:
    """Rows of the AI services :data:`~.formats.FOCUS_DIALECTS` know; other rows are skipped."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in FOCUS_REQUIRED if c not in header]
    if missing:
        raise ExportError(file, 1, None, f"not a FOCUS cost and usage file: no column "
                          f"{', '.join(missing)}")
    lines: list[BillLine] = []
    skipped = 0
    units: set[str] = set()
    for row in reader:
        line = reader.line_num
        dialect = next((d for d in fm.FOCUS_DIALECTS
                        if (row.get("ServiceName") or "").strip().lower() in d.services), None)
        if dialect is None:
            skipped += 1
            continue
        if dialect.meter_column not in row:
            raise ExportError(file, 1, dialect.meter_column, f"{dialect.title}: the column is "
                              "missing")
        if (row.get("BillingCurrency") or "").strip().upper() != "USD":
            raise ExportError(file, line, "BillingCurrency", "only USD bills are supported, got "
                              f"{row.get('BillingCurrency')!r}")
        day = _focus_day(row["ChargePeriodStart"] or "", file, line)
        amount = _decimal((row["BilledCost"] or "").strip() or None, file, line, "BilledCost")
        meter = (row.get(dialect.meter_column) or "").strip()
        m = dialect.meter.match(meter)
        if m is None:  # an AI charge that is not tokens (provisioned throughput, ...): kept whole
            lines.append(BillLine(f"{file}:{line}", day, dialect.provider, meter, fm.ALL,
                                  amount=amount))
            continue
        model = rewrite_model(m["model"], dialect.provider, dialect.rewrites)
        token_type = dialect.types[m["type"].lower()]
        tier = dialect.tiers.get((m["tier"] or "").lower(), "standard")
        unit = (row.get("ConsumedUnit") or "").strip().lower()
        tokens = None
        quantity = (row.get("ConsumedQuantity") or "").strip()
        if unit in fm.TOKEN_UNITS and quantity:
            value = _decimal(quantity, file, line, "ConsumedQuantity") * fm.TOKEN_UNITS[unit]
            if value != value.to_integral_value() or value < 0:
                raise ExportError(file, line, "ConsumedQuantity",
                                  f"{quantity} {row.get('ConsumedUnit')} is not a token count")
            tokens = int(value)
        elif quantity:
            units.add(row.get("ConsumedUnit") or "")
        lines.append(BillLine(f"{file}:{line}", day, dialect.provider, model, token_type, tier,
                              amount, tokens))
    notes = [f"{file}: ConsumedUnit {u!r} is not a token unit: its rows are compared by cost "
             "only" for u in sorted(units)]
    return lines, skipped, notes


# -- files -----------------------------------------------------------------------------------

def read_export(path: str | Path) -> Export:
    """One export file, its format recognised from its content."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ExportError(file, None, None, "file not found") from None
    except OSError as exc:
        raise ExportError(file, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExportError(file, None, None, "not UTF-8 text") from None
    digest = hashlib.sha256(data).hexdigest()
    if text.lstrip().startswith(("{", "[")):
        doc = loads(text, file)
        f = detect_json(doc, file)
        lines = read_json(doc, file, f)
        return Export(file, f.name, f.title, f.provider, f.kind, f.covers_embeddings,
                      tuple(lines), digest=digest, days=frozenset(ln.day for ln in lines))
    lines, skipped, notes = read_focus(text, file)
    if not lines:
        raise ExportError(file, None, None, "no rows of an AI service this reader knows ("
                          + "; ".join(d.title for d in fm.FOCUS_DIALECTS) + ")")
    providers = sorted({ln.provider for ln in lines})
    title = "FOCUS cost and usage (" + ", ".join(
        d.name for d in fm.FOCUS_DIALECTS if d.provider in providers) + ")"
    return Export(file, "focus", title, ",".join(providers), "cost", True, tuple(lines),
                  skipped, tuple(notes), digest, frozenset(ln.day for ln in lines))


def read_exports(paths: Sequence[str | Path]) -> list[Export]:
    """Every file; the same file twice, or two API reports of one kind covering the same
    provider day, is refused (it would be counted twice). FOCUS files are exported in
    parts that may share days, so only an identical FOCUS file is refused."""
    exports = [read_export(p) for p in paths]
    seen: dict[str, str] = {}
    for e in exports:
        if e.digest in seen:
            raise ExportError(e.file, None, None, f"the same file as {seen[e.digest]}")
        seen[e.digest] = e.file
    covered: dict[tuple[str, str, dt.date], str] = {}
    for e in exports:
        if e.format == "focus":  # cloud exports come in parts that share days
            continue
        for ln in e.lines:
            key = (ln.provider, e.kind, ln.day)
            other = covered.setdefault(key, e.file)
            if other != e.file:
                raise ExportError(e.file, None, None, f"{ln.provider} {e.kind} on {ln.day} is in "
                                  f"{other} too: pass each export once")
    return exports

