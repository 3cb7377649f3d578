"""Storage: one URL picks the embedded engine (chdb) or a ClickHouse server.

``open_store`` does not run migrations unless asked (``migrate=True``): the
writer (collector, ``spanledger db migrate``) owns the schema; readers open
what exists. An embedded store held by a running collector is reached,
read-only, through the collector's SQL HTTP front (see ``discovery``).
"""

from __future__ import annotations

import os
from pathlib import Path

from spanledger.store.base import Store, StoreError, StoreLocked, StoreUnavailable
from spanledger.store.otel_schema import otel_traces_schema
from spanledger.store.url import DEFAULT_URL, ENV_VAR, StoreUrlError, parse_url, resolve_url

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "StoreUrlError",
    "open_store",
    "otel_traces_schema",
    "parse_url",
    "resolve_url",
]


def open_store(url: str | None = None, *, read_only: bool = False, migrate: bool = False) -> Store:
    """Open the store at ``url`` (None: $SPANLEDGER_CLICKHOUSE_URL, else chdb://./spanledger-data).

    ``chdb://PATH`` creates PATH if needed. If another process holds it, a
    ``read_only`` open returns an HTTP store on the collector's advertised SQL
    endpoint; otherwise :class:`StoreLocked` says what to do.
    ``migrate=True`` runs the migrations first (not with ``read_only``).
    Raises StoreUrlError for a malformed URL.
    """
    parsed = parse_url(url)
    store: Store
    if parsed.is_chdb:
        from spanledger.store.chdb_store import ChdbStore

        try:
            store = ChdbStore(parsed.path, read_only=read_only, url=parsed.raw)
        except StoreLocked as exc:
            if not read_only:
                raise
            store = _via_collector(parsed.path, exc)
    else:
        from spanledger.store.http_store import HttpStore

        store = HttpStore(parsed, read_only=read_only)
    if migrate:
        if read_only:
            raise StoreError("cannot migrate a store opened read-only")
        from spanledger.store.migrate import migrate as run_migrations

        try:
            run_migrations(store)
        except BaseException:
            store.close()
            raise
    return store


def _via_collector(path: str, locked: StoreLocked) -> Store:
    """A read-only HTTP store on the SQL front of the collector holding ``path``."""
    from urllib.parse import quote

    from spanledger.store.discovery import FILE_NAME, TOKEN_ENV, find_endpoint
    from spanledger.store.http_store import HttpStore

    endpoint = find_endpoint(Path(path).expanduser().resolve())
    if endpoint is None:
        raise StoreLocked(
            f"the embedded store {path} is held by another process (usually "
            "`spanledger collector`) that does not serve SQL: enable the collector's "
            f"sql_http endpoint (it then writes {FILE_NAME} there) or stop the collector"
        ) from locked
    token = os.environ.get(TOKEN_ENV)
    if token:  # the collector guards its SQL front with its bearer token
        endpoint = endpoint.replace("://", f"://default:{quote(token, safe='')}@", 1)
    return HttpStore(parse_url(endpoint), read_only=True)
