"""Every attribute the ClickHouse migrations read is a name spanledger.semconv defines.

The views in clickhouse/*.sql turn span attributes into columns; the processor
and the collector write those attributes through the constants in
:mod:`spanledger.semconv`. A name spelled differently on one side is a column
that silently stays empty (a cost never summed, a team never attributed), so
the SQL is read here and every name it uses must be defined once, in semconv.
"""

from __future__ import annotations

import re
from pathlib import Path

from spanledger import semconv
from spanledger.resources import data_dir

_MAP = r"(SpanAttributes|ResourceAttributes)"
#: SpanAttributes['name'] and mapContains(SpanAttributes, 'name')
ATTRIBUTE_USES = (re.compile(_MAP + r"\[\s*'([^']+)'\s*\]"),
                  re.compile(r"mapContains\(\s*" + _MAP + r"\s*,\s*'([^']+)'\s*\)"))
#: a map read whose key is not a literal: the contract could not be checked
DYNAMIC_USE = re.compile(_MAP + r"\[\s*[^'\s]")
STATUS_LITERALS = (re.compile(r"\bStatus\s*!?=\s*'([^']*)'"),
                   re.compile(r"\['spanledger\.cost\.status'\]\s*IN\s*\(([^)]*)\)"))


def migrations() -> list[Path]:
    return sorted(data_dir("clickhouse").glob("*.sql"))


def attribute_uses() -> list[tuple[str, str, str]]:
    """(where, map, attribute name) for every literal attribute read in the migrations."""
    out = []
    for path in migrations():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("--"):
                continue
            out += [(f"clickhouse/{path.name}:{n}", m, name)
                    for pattern in ATTRIBUTE_USES for m, name in pattern.findall(line)]
    return out


def defined_names() -> set[str]:
    """Every string the semconv module's public constants hold (single names and tuples)."""
    names = {semconv.attribution_attr(k) for k in semconv.DEFAULT_ATTRIBUTION_KEYS}
    for key, value in vars(semconv).items():
        if not key.isupper():
            continue
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, tuple | frozenset):
            names |= {v for v in value if isinstance(v, str)}
    return names


RESOURCE_NAMES = {semconv.SERVICE_NAME, *semconv.ENVIRONMENT}


def test_the_migrations_read_attributes() -> None:
    # a pattern that matched nothing would pass the checks below
    uses = attribute_uses()
    assert len({name for _, _, name in uses}) >= 30
    assert ("SpanAttributes", "gen_ai.usage.cost") in {(m, n) for _, m, n in uses}


def test_every_attribute_the_sql_reads_is_defined_in_semconv() -> None:
    defined = defined_names()
    missing = [f"{where}: {m}['{name}']" for where, m, name in attribute_uses()
               if name not in defined]
    assert not missing, ("attributes read by the migrations but not defined in "
                         "processor/spanledger/semconv.py:\n" + "\n".join(missing))


def test_resource_attributes_are_the_resource_constants() -> None:
    wrong = [f"{where}: {m}['{name}']" for where, m, name in attribute_uses()
             if (m == "ResourceAttributes") != (name in RESOURCE_NAMES)]
    assert not wrong, "span and resource attributes mixed up:\n" + "\n".join(wrong)


def test_every_map_read_uses_a_literal_name() -> None:
    dynamic = [f"clickhouse/{p.name}:{n}: {line.strip()}" for p in migrations()
               for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
               if DYNAMIC_USE.search(line) and not line.lstrip().startswith("--")]
    assert not dynamic, "attribute names this test cannot check:\n" + "\n".join(dynamic)


def test_cost_statuses_in_the_sql_are_semconv_statuses() -> None:
    statuses = {semconv.STATUS_PRICED, semconv.STATUS_UNPRICED, semconv.STATUS_AGGREGATE,
                semconv.STATUS_NO_USAGE, semconv.STATUS_DUPLICATE, semconv.STATUS_INVALID}
    used = set()
    for path in migrations():
        text = path.read_text(encoding="utf-8")
        used |= set(STATUS_LITERALS[0].findall(text))
        for group in STATUS_LITERALS[1].findall(text):
            used |= set(re.findall(r"'([^']*)'", group))
    assert {"priced", "unpriced", "aggregate"} <= used  # the patterns found the views' filters
    assert used - {""} <= statuses, used - statuses
