"""The server backend: a ClickHouse server or cluster (or our SQL front) over HTTP.

clickhouse-connect speaks the Native format, so Decimals stay Decimals and
times stay times; values are then normalized like the embedded backend's
(UTC-aware datetimes) so reports cannot tell the backends apart. The client
connects lazily: a collector can start while the server is down, get
:class:`StoreUnavailable` on its first write, spool and retry.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store.base import (
    Inserted,
    StoreError,
    StoreHandle,
    StoreUnavailable,
    dedup_settings,
)
from spanledger.store.url import StoreUrl
from spanledger.store.values import normalize


def _translate(exc: BaseException, url: str) -> StoreError:
    from clickhouse_connect.driver import exceptions as ch

    text = str(exc).strip()
    # clickhouse-connect wraps the server's own message; keep just that
    _, found, server_text = text.partition("server response: ")
    if found:
        text = server_text.split(" (for url ")[0].strip()
    if isinstance(exc, ch.OperationalError | OSError):
        return StoreUnavailable(f"ClickHouse at {url} is unreachable: {text}")
    return StoreError(text)


class HttpStore(StoreHandle):
    """A Store on ``http(s)://user:password@host:port/database`` via clickhouse-connect."""

    def __init__(self, url: StoreUrl, *, read_only: bool = False) -> None:
        self._target = url
        self.url = url.redacted()
        self.read_only = read_only
        self._client: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _get_client(self) -> Any:
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        with self._lock:
            if self._client is None:
                import clickhouse_connect

                t = self._target
                try:
                    self._client = clickhouse_connect.get_client(
                        host=t.host,
                        port=t.port,
                        username=t.username,
                        password=t.password,
                        database=t.database,
                        secure=t.scheme == "https",
                        # no server session: concurrent queries from several threads
                        autogenerate_session_id=False,
                        connect_timeout=5,
                        send_receive_timeout=300,
                    )
                except Exception as exc:
                    raise _translate(exc, self.url) from exc
            return self._client

    def query_columns(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        client = self._get_client()
        try:
            result = client.query(sql, parameters=params or None)
        except Exception as exc:
            raise _translate(exc, self.url) from exc
        rows = [tuple(normalize(v) for v in row) for row in result.result_rows]
        return list(result.column_names), rows

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.query_columns(sql, params)[1]

    def query_raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes:
        client = self._get_client()
        try:
            return bytes(client.raw_query(sql, parameters=params or None, fmt=fmt))
        except Exception as exc:
            raise _translate(exc, self.url) from exc

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        self._check_writable()
        client = self._get_client()
        try:
            client.command(sql, settings=settings or None)
        except Exception as exc:
            raise _translate(exc, self.url) from exc

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self._insert(table, data, dedup_settings(dedup_token))

    def _insert(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        self._check_writable()
        if data.num_rows == 0:
            return
        client = self._get_client()
        try:
            client.insert_arrow(table, data, settings=settings)
        except Exception as exc:
            raise _translate(exc, self.url) from exc

    def insert_arrow_file(
        self, table: str, path: str | Path, dedup_token: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Inserted:
        """The server cannot see this machine's files: the rows travel in the request.

        How many rows the table really gained is unknown here: the server's
        summary (``written_rows``) counts rows that deduplication skipped and
        every view's rows too, and other writers share the table.
        """
        with pa.memory_map(str(path)) as source:
            data = pa.ipc.open_stream(source).read_all()
        self._insert(table, data, {**dedup_settings(dedup_token), **(settings or {})})
        return Inserted(data.num_rows, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


