"""The embedded backend: the ClickHouse engine in-process (chdb) on a local directory.

chdb allows one store path per process and one process per path. Several
parts of one process (the collector's writer, its SQL HTTP front, a report)
may still want "a store" at once, so sessions are shared per path with a
reference count: every ``ChdbStore`` is a handle, the session closes with the
last handle. A second process gets :class:`StoreLocked`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store.base import (
    StoreError,
    StoreHandle,
    StoreLocked,
    columns_of,
    dedup_settings,
    quote_ident,
)
from spanledger.store.values import arrow_rows, params_text

log = logging.getLogger(__name__)

_registry_lock = threading.Lock()
#: absolute path -> [session, handle count]
_sessions: dict[str, list[Any]] = {}


def _error(exc: BaseException, path: str) -> StoreError:
    """Translate a chdb exception into the store's error classes (message kept)."""
    text = str(exc)
    if "Cannot lock file" in text or "Error initializing EmbeddedServer" in text:
        return StoreLocked(
            f"the embedded store {path} is in use by another process "
            f"(usually `spanledger collector`): {text.strip()}"
        )
    if "EmbeddedServer already initialized with path" in text:
        return StoreError(
            f"another embedded store is already open in this process; close it before "
            f"opening {path} ({text.strip()})"
        )
    return StoreError(text.strip())


@contextlib.contextmanager
def _engine_stderr_silenced() -> Iterator[None]:
    """Keep the engine's own start-up chatter off the user's terminal.

    On a locked store the embedded server prints ``Code: 76 ... Cannot lock file``
    to file descriptor 2 before raising; the exception carries the same text and
    the CLI turns it into one clear line, so the raw copy is only noise.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _acquire(path: str) -> Any:
    import chdb.session

    with _registry_lock:
        entry = _sessions.get(path)
        if entry is not None:
            entry[1] += 1
            return entry[0]
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            with _engine_stderr_silenced():
                session = chdb.session.Session(path)
        except Exception as exc:  # chdb raises RuntimeError with ClickHouse's text
            raise _error(exc, path) from exc
        _sessions[path] = [session, 1]
        return session


def _release(path: str) -> None:
    with _registry_lock:
        entry = _sessions.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _sessions[path]
            try:
                entry[0].close()
            except Exception:  # closing must never mask the caller's own error
                log.debug("closing chdb session %s failed", path, exc_info=True)


class ChdbStore(StoreHandle):
    """A handle on the embedded store at ``path`` (thread-safe, like chdb's Session)."""

    def __init__(
        self, path: str | Path, *, read_only: bool = False, url: str | None = None
    ) -> None:
        self.path = str(Path(path).expanduser().resolve())
        self.url = url or f"chdb://{self.path}"
        self.read_only = read_only
        self._session = _acquire(self.path)
        self._closed = False
        self._close_lock = threading.Lock()

    # -- reads -----------------------------------------------------------------
    def query_columns(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        table = self._run(sql, "ArrowTable", params)
        if not isinstance(table, pa.Table):  # a statement without a result set
            return [], []
        return arrow_rows(table)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.query_columns(sql, params)[1]

    def query_raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes:
        """The engine's own output in ClickHouse format ``fmt`` (Native, TabSeparated, ...).

        The SQL HTTP front relays these bytes unchanged, so clients decode them
        exactly as they would a server's reply.
        """
        result = self._run(sql, fmt, params)
        return bytes(result.bytes()) if result is not None else b""

    # -- writes ----------------------------------------------------------------
    def command(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        self._check_writable()
        if settings:
            sql = _with_settings(sql, settings)
        self._run(sql, "CSV", None)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self._check_writable()
        if data.num_rows == 0:
            return
        # chdb's Python() table function finds the Arrow table by its variable
        # name in the calling frames: keep the local called ``arrow_data``.
        arrow_data = data  # noqa: F841  (read by chdb through the frame)
        self._run(_insert_sql(table, data.column_names, "Python(arrow_data)",
                              dedup_settings(dedup_token)), "CSV", None)

    def insert_arrow_file(
        self, table: str, path: str | Path, dedup_token: str | None = None
    ) -> None:
        """The engine reads the file itself (``file(..., 'ArrowStream')``).

        Unlike an insert from a Python object, the read releases the GIL, so the
        collector's receivers keep answering meanwhile. One reading thread makes
        one insert block: the dedup token covers exactly the file's rows however
        often it is replayed.
        """
        self._check_writable()
        source = Path(path).resolve()
        with pa.OSFile(str(source)) as fh:
            columns = pa.ipc.open_stream(fh).schema.names
        settings = {**dedup_settings(dedup_token), "max_threads": 1, "max_insert_threads": 1}
        reader = f"file({_literal(str(source))}, 'ArrowStream')"
        self._run(_insert_sql(table, columns, reader, settings), "CSV", None)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _release(self.path)

    # -- internals -------------------------------------------------------------

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None) -> Any:
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        try:
            return self._session.query(sql, fmt, params=params_text(params))
        except Exception as exc:
            raise _error(exc, self.path) from exc


def _literal(value: Any) -> str:
    """A setting value or path as ClickHouse SQL."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settings_clause(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_literal(v)}" for k, v in settings.items())


def _with_settings(sql: str, settings: dict[str, Any]) -> str:
    """Append a SETTINGS clause (valid after DDL and INSERT ... SELECT statements)."""
    return f"{sql.rstrip().rstrip(';')} SETTINGS {_settings_clause(settings)}"


def _insert_sql(table: str, columns: list[str], source: str, settings: dict[str, Any]) -> str:
    """``INSERT INTO table (columns) SETTINGS ... SELECT columns FROM source``."""
    cols = columns_of(columns)
    return (f"INSERT INTO {quote_ident(table)} ({cols}) SETTINGS {_settings_clause(settings)} "
            f"SELECT {cols} FROM {source}")
