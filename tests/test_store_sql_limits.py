"""The SQL front cannot starve the collector: reads are cut at their slice, wait behind
inserts, queue in bounded numbers, are capped in memory and stop when their client goes.

chdb runs one statement at a time; before these limits a 60 s dashboard query held
every insert for 60 s and a huge one grew the collector to 5.5 GB.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanledger.collector.app import Collector
from spanledger.collector.config import CollectorConfig
from spanledger.collector.segment_conversion import write_stream
from spanledger.store import Store
from spanledger.store.chdb_store import EngineTurns
from spanledger.store.sql_http import SqlHttpServer, client_gone
from support.store import batch, migrated_store, span

LONG = "SELECT count() FROM numbers(1000000000000)"  # runs for minutes unless stopped


def _post(url: str, body: str, timeout: float = 60) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url + "/", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with migrated_store(tmp_path / "store") as s:
        yield s


def test_a_waiting_write_goes_before_a_waiting_read() -> None:
    turns = EngineTurns()
    order: list[str] = []
    release = threading.Event()

    def first_read() -> None:
        with turns.read():
            release.wait(10)
            order.append("read 1")

    def later(kind: str) -> None:
        with turns.write() if kind == "write" else turns.read():
            order.append(kind)

    threads = [threading.Thread(target=first_read)]
    threads[0].start()
    _until(lambda: turns.busy)
    threads.append(threading.Thread(target=later, args=("write",)))
    threads[1].start()
    _until(lambda: turns.writers_waiting == 1)
    threads += [threading.Thread(target=later, args=("read",)) for _ in range(3)]
    for t in threads[2:]:
        t.start()
    time.sleep(0.1)  # the reads are waiting too (none may have run: the engine is busy)
    assert order == []
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["read 1", "write", "read", "read", "read"]


def test_a_long_read_is_cut_at_its_slice_and_the_insert_goes_before_the_queued_reads(
        tmp_path: Path, store: Store) -> None:
    rows = [span("c" * 32) for _ in range(7)]
    file = tmp_path / "segment.arrows"
    write_stream(batch(rows), file)
    results: dict[str, Any] = {}
    with SqlHttpServer(store, port=0, max_execution_time=2) as front:
        long_read = threading.Thread(target=lambda: results.update(long=_post(front.url, LONG)))
        long_read.start()
        _until(lambda: front.turns.running and store.turns.busy)  # type: ignore[attr-defined]
        time.sleep(0.3)  # the long query is well under way in the engine
        insert = threading.Thread(target=lambda: results.update(
            insert=store.insert_arrow_file("otel_traces", file, "limits-1")))
        insert.start()
        _until(lambda: store.turns.writers_waiting or "insert" in results)  # type: ignore
        readers = [threading.Thread(target=lambda i=i: results.update(
            {f"read{i}": _post(front.url, "SELECT count() FROM otel_traces")}))
            for i in range(3)]
        for t in readers:
            t.start()
        for t in [long_read, insert, *readers]:
            t.join(60)
    status, body, _ = results["long"]
    assert status == 500 and "TIMEOUT_EXCEEDED" in body  # stopped at its 2 s slice
    assert results["insert"].written == 7
    for i in range(3):  # every read queued behind the insert saw its rows
        assert results[f"read{i}"][:2] == (200, "7\n")


def test_a_query_over_its_memory_cap_is_refused_with_a_clear_error(store: Store) -> None:
    with SqlHttpServer(store, port=0, max_memory_mb=64) as front:
        status, body, headers = _post(front.url,
                                      "SELECT groupArray(number) FROM numbers(50000000)")
        assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "241"
        assert "MEMORY_LIMIT_EXCEEDED" in body and "memory limit" in body.lower()
        assert _post(front.url, "SELECT 1")[:2] == (200, "1\n")  # the engine is fine


def test_beyond_the_queue_queries_are_refused_with_503(store: Store) -> None:
    results: dict[str, Any] = {}
    with SqlHttpServer(store, port=0, max_execution_time=3, max_queued=1) as front:
        running = threading.Thread(target=lambda: results.update(a=_post(front.url, LONG)))
        running.start()
        _until(lambda: front.turns.running)
        waiting = threading.Thread(target=lambda: results.update(
            b=_post(front.url, "SELECT 2")))
        waiting.start()
        _until(lambda: front.turns.waiting == 1)
        status, body, headers = _post(front.url, "SELECT 3")
        running.join(60)
        waiting.join(60)
    assert status == 503 and "TOO_MANY_SIMULTANEOUS_QUERIES" in body
    assert headers["X-ClickHouse-Exception-Code"] == "202" and headers["Retry-After"] == "1"
    assert "TIMEOUT_EXCEEDED" in results["a"][1]
    assert results["b"][:2] == (200, "2\n")  # the one that waited got its turn


def test_a_query_whose_client_goes_away_is_cancelled(store: Store) -> None:
    # ~2.6 s per block of 65409 rows, for hours: only a cancel ends it before the slice
    slow = "SELECT number, sleepEachRow(0.00004) FROM numbers(100000000000)"
    with SqlHttpServer(store, port=0, max_execution_time=120) as front:
        sock = socket.create_connection((front.host, front.port))
        body = slow.encode()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        _until(lambda: front.turns.running and store.turns.busy)  # type: ignore[attr-defined]
        sock.close()
        _until(lambda: front.cancelled == 1, timeout=60)
        _until(lambda: not front.turns.running)
        assert _post(front.url, "SELECT 1")[:2] == (200, "1\n")


def test_the_collector_config_sets_the_limits(tmp_path: Path) -> None:
    cfg = CollectorConfig.model_validate({
        "sql_http": {"port": 0, "max_execution_time_s": 1, "max_memory_mb": 100,
                     "max_result_mb": 1, "max_queued": 2, "max_wait_s": 5},
        "receivers": {"otlp": {"grpc": {"port": 0}, "http": {"port": 0}}},
        "exporters": {"clickhouse": {"url": f"chdb://{tmp_path / 'store'}"}},
        "processors": {"batch": {"workers": 0}},
    })
    collector = Collector(cfg).start()
    try:
        front = collector.sql_http
        assert front is not None
        assert (front.max_execution_time, front.max_memory_mb, front.max_result_mb,
                front.turns.max_queued, front.turns.max_wait_s) == (1, 100, 1, 2, 5)
        status, body, _ = _post(front.url, LONG)
        assert status == 500 and "TIMEOUT_EXCEEDED" in body
        status, body, _ = _post(front.url, "SELECT repeat('x', 100) FROM numbers(100000)")
        assert status == 500 and "TOO_MANY_ROWS_OR_BYTES" in body  # over max_result_mb
    finally:
        collector.stop(timeout=10)


def test_a_client_is_gone_only_when_it_hung_up() -> None:
    """A collector holds many files open; select() fails past descriptor 1023, and taking
    that for a hang-up cancelled healthy queries."""
    held = [open(os.devnull) for _ in range(1100)]  # noqa: SIM115 (closed below)
    try:
        ours, theirs = socket.socketpair()
        assert ours.fileno() > 1023
        assert not client_gone(ours)
        theirs.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request is not a hang-up
        assert not client_gone(ours)
        theirs.close()
        ours.recv(100)
        assert client_gone(ours)
        ours.close()
    finally:
        for f in held:
            f.close()
