"""The read-only SQL front against a hostile client: ClickHouse's parser decides.

Every query of the corpus hides a write (INTO OUTFILE, a file() table
function, SETTINGS that undo readonly) or a disclosure (paths, other
sessions' queries) behind something a hand-written lexer reads differently
from ClickHouse: Unicode spaces, nested comments, heredocs, quoted names,
hash comments, escapes. Each is sent over HTTP to a real front on chdb and
must be refused; afterwards the target file must not exist and the data must
be unchanged. A bounded fuzz run mixes the same fragments at random.
"""

from __future__ import annotations

import itertools
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanledger.store import Store
from spanledger.store.sql_gate import ReadOnlyGate, RefusedQuery, parse_dump
from spanledger.store.sql_http import SqlHttpServer
from support.store import batch, migrated_store, span

_seq = itertools.count()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SqlHttpServer, Path]]:
    base = tmp_path_factory.mktemp("gate")
    with migrated_store(base / "store") as store:
        store.insert_arrow("otel_traces", batch([span("b" * 32, cost=Decimal("2.5"))]), "seed")
        with SqlHttpServer(store, port=0) as server:
            yield store, server, base / "targets"


def _post(url: str, body: str) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


ZWSP, NBSP, IDEO = "\u200b", "\u00a0", "\u3000"
#: {p} is replaced by a fresh target path per query
WRITES = [
    f"SELECT 1{ZWSP}INTO{ZWSP}OUTFILE '{{p}}'",
    f"SELECT 1{IDEO}INTO OUTFILE '{{p}}'",
    f"SELECT 1{NBSP}INTO{NBSP}OUTFILE '{{p}}'",
    "SELECT 1 /* /* */ */ INTO OUTFILE '{p}'",
    "SELECT 1 /* /* /* */ */ */ INTO OUTFILE '{p}' TRUNCATE",
    "SELECT 1 -- c\nINTO OUTFILE '{p}'",
    "SELECT 1 # c\nINTO OUTFILE '{p}'",
    "SELECT 1 #! c\nINTO OUTFILE '{p}'",
    "SELECT $$a'$$ INTO OUTFILE '{p}'",
    "SELECT 'a\\'' INTO OUTFILE '{p}'",
    "SELECT `a``` INTO OUTFILE '{p}'",
    'SELECT "a""" INTO OUTFILE \'{p}\'',
    "select 1 into\toutfile '{p}' and stdout",
    "SELECT 1 INTO OUTFILE '{p}' COMPRESSION 'gzip'",
    "SELECT 1 INTO OUTFILE '{p}' FORMAT CSV",
    "(SELECT 1) INTO OUTFILE '{p}'",
    "SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{p}'",
    "WITH x AS (SELECT 1) SELECT * FROM x INTO OUTFILE '{p}'",
    "EXPLAIN SELECT 1 INTO OUTFILE '{p}'",
    "EXPLAIN AST SELECT 1 INTO OUTFILE '{p}'",
    "SHOW TABLES INTO OUTFILE '{p}'",
    "DESCRIBE TABLE llm_calls INTO OUTFILE '{p}'",
    "EXISTS TABLE llm_calls INTO OUTFILE '{p}'",
    "SELECT 1; SELECT 1 INTO OUTFILE '{p}'",
    f"SELECT 1;{ZWSP}SELECT 1 INTO OUTFILE '{{p}}'",
    "INSERT INTO FUNCTION file('{p}', 'CSV') SELECT 1",
    "SELECT * FROM file('{p}', 'CSV', 'a String')",
    "SELECT file('{p}')",
    "SELECT * FROM `file`('{p}')",
    'SELECT * FROM "file"(\'{p}\')',
    "SELECT * FROM /* x */ file /* y */ ('{p}')",
    "SELECT 1 WHERE 'a' IN (SELECT * FROM file('{p}', 'LineAsString'))",
    "SELECT * FROM view(SELECT * FROM file('{p}'))",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 FORMAT CSV SETTINGS readonly = 0",
    "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
    "SELECT 1 UNION ALL SELECT 2 SETTINGS readonly = 0",
    "EXPLAIN json = 1 SELECT 1",
    "SET readonly = 0",
    "USE system",
]
DISCLOSURES = [
    "SELECT * FROM system.processes",
    "SELECT query FROM system.processes",
    "SELECT 1 WHERE 'a' IN system.processes",
    "SELECT path FROM system.parts",
    "SELECT * FROM system.disks",
    "SELECT * FROM system.tables",
    "SELECT metadata_path FROM system.tables",
    "SELECT data_paths FROM `system`.`tables`",
    "SELECT COLUMNS('path') FROM system.databases",
    "SELECT t.* FROM system.tables AS t",
    "SELECT * FROM merge('system', '^processes$')",
    "SELECT getServerSetting('path')",
    "SELECT * FROM system.users",
    "SHOW PROCESSLIST",
    "SHOW GRANTS",
    "EXISTS TABLE system.processes",
    "DESCRIBE TABLE system.processes",
    "SELECT * FROM information_schema.tables AS t, system.processes AS p",
    "SELECT * FROM other_db.t",
]
READS = [
    ("SELECT count() FROM llm_calls", "1\n"),
    ("SELECT 'INTO OUTFILE /tmp/x' AS s", "INTO OUTFILE /tmp/x\n"),
    ("SELECT 1 -- INTO OUTFILE '/tmp/x'", "1\n"),
    ("SELECT 1 /* /* nested */ INTO OUTFILE '/tmp/x' */", "1\n"),
    ("SELECT $$a;b$$", "a;b\n"),
    ("SELECT name FROM system.tables WHERE name = 'llm_calls'", "llm_calls\n"),
    ("SELECT sum(Cost) FROM llm_cost_daily FORMAT CSV", "2.5\n"),
    ("SHOW TABLES FROM system LIKE 'one'", "one\n"),
    ("EXISTS TABLE llm_calls", "1\n"),
    ("SELECT count() FROM numbers(10)", "10\n"),
    ("SELECT name FROM system.settings WHERE name = 'readonly'", "readonly\n"),
]


@pytest.mark.parametrize("template", WRITES)
def test_hidden_writes_are_refused(front: tuple[Store, SqlHttpServer, Path],
                                   template: str) -> None:
    store, server, targets = front
    target = targets / f"escape-{next(_seq)}.txt"
    status, body = _post(server.url + "/", template.replace("{p}", str(target)))
    assert status in (400, 403), body
    assert body.startswith("Code: ") and "DB::Exception" in body
    assert not target.exists()
    assert store.query("SELECT count(), sum(Cost) FROM llm_calls") == [(1, Decimal("2.5"))]


@pytest.mark.parametrize("sql", DISCLOSURES)
def test_disclosures_are_refused(front: tuple[Store, SqlHttpServer, Path], sql: str) -> None:
    _, server, _ = front
    status, body = _post(server.url + "/", sql)
    assert status in (400, 403, 404), body
    assert "Code: " in body
    assert "/store" not in body  # no path of the store leaks through the message


@pytest.mark.parametrize(("sql", "expected"), READS)
def test_plain_reads_still_work(front: tuple[Store, SqlHttpServer, Path], sql: str,
                                expected: str) -> None:
    _, server, _ = front
    assert _post(server.url + "/", sql) == (200, expected)


def test_messages_name_what_was_refused(front: tuple[Store, SqlHttpServer, Path]) -> None:
    store, _, _ = front
    gate = ReadOnlyGate(store)  # type: ignore[arg-type]
    cases = {
        f"SELECT 1{ZWSP}INTO OUTFILE '/tmp/x'": "INTO OUTFILE is not allowed",
        "SELECT * FROM `file`('/x')": "function file() reaches outside",
        "SELECT 1 SETTINGS readonly = 0": "SETTINGS clause is not allowed",
        "DROP TABLE llm_calls": "DROP is not allowed",
        "SELECT 1; SELECT 2": "multi-statements are not allowed",
        "SELECT * FROM system.processes": "system.processes is not readable",
    }
    for sql, message in cases.items():
        with pytest.raises(RefusedQuery, match=re.escape(message)):
            gate.check(sql)


def test_parse_dump_reads_the_tree() -> None:
    nodes = parse_dump("SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n"
                       "  Function numbers (alias n) (children 1)\n Literal '/tmp/x'\n")
    assert [(n.depth, n.kind, n.text, n.parent) for n in nodes] == [
        (0, "SelectWithUnionQuery", "", ""), (1, "ExpressionList", "", "SelectWithUnionQuery"),
        (2, "Function", "numbers", "ExpressionList"),
        (1, "Literal", "'/tmp/x'", "SelectWithUnionQuery")]


FRAGMENTS = ["SELECT", "1", "INTO", "OUTFILE", "'{p}'", "FROM", "file('{p}')", "SETTINGS",
             "readonly=0", "FORMAT", "CSV", ";", "/*", "*/", "--", "#", "\n", "$$", "'", "`",
             '"', "(", ")", ZWSP, NBSP, IDEO, " ", "\t", "\\", "UNION ALL", "WITH", "x AS"]


#: SPANLEDGER_FUZZ_EXAMPLES=20000 for a long run; the suite's default takes a few seconds
FUZZ_EXAMPLES = int(os.environ.get("SPANLEDGER_FUZZ_EXAMPLES", "150"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14))
def test_fuzzed_fragments_never_write(front: tuple[Store, SqlHttpServer, Path],
                                      parts: list[str]) -> None:
    store, server, targets = front
    target = targets / f"fuzz-{next(_seq)}.txt"
    sql = "".join(p if p in (ZWSP, NBSP, IDEO, "\n", "\t") else p + " " for p in parts)
    status, body = _post(server.url + "/", sql.replace("{p}", str(target)))
    assert status in (200, 400, 403, 404, 500), body
    assert not target.exists(), sql
    assert store.query("SELECT count() FROM llm_calls") == [(1,)]
