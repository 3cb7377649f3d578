"""The read-only SQL front: real clickhouse-connect and raw HTTP against chdb.

Reads work the way they do against a ClickHouse server (Decimals stay
Decimals); every kind of write or escape is refused with a ClickHouse-style
error, and the data is unchanged afterwards.
"""

from __future__ import annotations

import base64
import gzip
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import pytest

from spanledger.store import Store, StoreError, open_store
from spanledger.store.sql_http import SqlHttpServer
from support.store import batch, migrated_store, span


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, SqlHttpServer]]:
    path = tmp_path_factory.mktemp("sqlhttp") / "store"
    with migrated_store(path) as store:
        rows = [span("a" * 32, cost=Decimal("0.000000000001"), team="search"),
                span("a" * 32, cost=Decimal("1.25"), team="search")]
        store.insert_arrow("otel_traces", batch(rows), "seed")
        server = SqlHttpServer(store, port=0).start()
        try:
            yield store, server
        finally:
            server.stop()


def _post(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_clickhouse_connect_reads(served: tuple[Store, SqlHttpServer]) -> None:
    _, server = served
    client = clickhouse_connect.get_client(host="127.0.0.1", port=server.port)
    try:
        result = client.query(
            "SELECT Team, sum(Cost), count() FROM llm_calls WHERE Team = {t:String} GROUP BY Team",
            parameters={"t": "search"},
        )
        assert result.result_rows == [("search", Decimal("1.250000000001"), 2)]
        assert isinstance(result.result_rows[0][1], Decimal)
    finally:
        client.close()


def test_http_store_over_the_front(served: tuple[Store, SqlHttpServer]) -> None:
    _, server = served
    store = open_store(server.url, read_only=True)
    try:
        assert store.query("SELECT sum(Cost) FROM llm_cost_daily") == [(Decimal("1.250000000001"),)]
        names, rows = store.query_columns("SELECT TraceId, sum(Calls) AS calls "
                                          "FROM llm_cost_by_trace GROUP BY TraceId")
        assert names == ["TraceId", "calls"] and rows == [("a" * 32, 2)]
        with pytest.raises(StoreError, match="read-only"):
            store.command("DROP TABLE llm_calls")
    finally:
        store.close()


def test_plain_http(served: tuple[Store, SqlHttpServer]) -> None:
    _, server = served
    assert _get(server.url + "/ping") == (200, "Ok.\n")
    q = urllib.parse.quote("SELECT count() FROM llm_calls")
    assert _get(f"{server.url}/?query={q}") == (200, "2\n")
    assert _get(f"{server.url}/?query={q}&default_format=JSONEachRow") == (200, '{"count()":2}\n')
    status, body = _post(server.url + "/", "SELECT Team, Cost FROM llm_calls ORDER BY Cost "
                         "FORMAT CSV")
    assert (status, body) == (200, '"search",0.000000000001\n"search",1.25\n')
    status, body = _post(server.url + "/?database=nosuch", "SELECT 1")
    assert status == 404 and "UNKNOWN_DATABASE" in body
    req = urllib.request.Request(
        server.url + "/", data=gzip.compress(b"SELECT 7"), method="POST",
        headers={"Content-Encoding": "gzip"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"7\n"
    status, body = _post(server.url + "/?compress=1", "SELECT 1")
    assert status == 400 and "compression" in body


REFUSED = [
    ("INSERT INTO llm_calls (TraceId) VALUES ('x')", 403, "INSERT is not allowed"),
    ("DROP TABLE llm_calls", 403, "DROP is not allowed"),
    ("ALTER TABLE llm_calls DELETE WHERE 1", 403, "ALTER is not allowed"),
    ("TRUNCATE TABLE otel_traces", 403, "TRUNCATE is not allowed"),
    ("CREATE TABLE x (a UInt8) ENGINE = Memory", 403, "CREATE is not allowed"),
    ("SYSTEM DROP DNS CACHE", 403, "SYSTEM is not allowed"),
    ("SET readonly = 0", 403, "SET is not allowed"),
    ("SELECT 1; DROP TABLE llm_calls", 400, "multi-statements are not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 403, "function file()"),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'CSV')", 403, "function url()"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/k.csv')", 403, "function s3()"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", 403, "function remote()"),
    ("SELECT * FROM Python(x)", 403, "function Python()"),
    ("SELECT * FROM `file`('/etc/passwd', 'LineAsString')", 403, "function file()"),
    ('SELECT * FROM "url" /* c */ (\'http://127.0.0.1:1/\', CSV)', 403, "function url()"),
    ("SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')", 403, "function mysql()"),
    ("SELECT 1 INTO OUTFILE '/tmp/spanledger-escape'", 403, "INTO OUTFILE is not allowed"),
    ("SELECT 1 SETTINGS readonly = 0", 403, "SETTINGS clause is not allowed"),
    ("WITH (SELECT 1) AS x SELECT * FROM file('a')", 403, "function file()"),
]


@pytest.mark.parametrize(("sql", "status", "message"), REFUSED)
def test_writes_and_escapes_are_refused(
    served: tuple[Store, SqlHttpServer], sql: str, status: int, message: str
) -> None:
    store, server = served
    got_status, body = _post(server.url + "/", sql)
    assert got_status == status
    assert body.startswith("Code: ") and "DB::Exception" in body and message in body
    assert store.query("SELECT count() FROM llm_calls") == [(2,)]
    assert not Path("/tmp/spanledger-escape").exists()


def test_engine_errors_are_relayed(served: tuple[Store, SqlHttpServer]) -> None:
    _, server = served
    status, body = _post(server.url + "/", "SELECT * FROM no_such_table")
    assert status == 404 and "Code: 60" in body and "UNKNOWN_TABLE" in body


def test_token_is_required_when_set(served: tuple[Store, SqlHttpServer]) -> None:
    store, _ = served
    with SqlHttpServer(store, port=0, token="s3cret") as guarded:
        assert _post(guarded.url + "/", "SELECT 1")[0] == 403
        basic = base64.b64encode(b"default:s3cret").decode()
        assert _post(guarded.url + "/", "SELECT 1", {"Authorization": f"Basic {basic}"}) == (
            200, "1\n"
        )
        assert _post(guarded.url + "/", "SELECT 1", {"X-ClickHouse-Key": "s3cret"})[0] == 200
        assert _post(guarded.url + "/", "SELECT 1", {"X-ClickHouse-Key": "wrong"})[0] == 403
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=guarded.port, username="default", password="s3cret"
        )
        try:
            assert client.query("SELECT 40 + 2").result_rows == [(42,)]
        finally:
            client.close()


def test_runaway_query_is_stopped(served: tuple[Store, SqlHttpServer]) -> None:
    store, _ = served
    with SqlHttpServer(store, port=0, max_execution_time=1) as short:
        status, body = _post(short.url + "/", "SELECT count() FROM numbers(100000000000)")
        assert status == 500 and "TIMEOUT_EXCEEDED" in body
        assert _post(short.url + "/", "SELECT 1") == (200, "1\n")  # the engine is fine
