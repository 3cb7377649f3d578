"""The embedded backend: the ClickHouse engine in-process (chdb) on a local directory.

chdb allows one store path per process and one process per path. Several
parts of one process (the collector's writer, its SQL HTTP front, a report)
may still want "a store" at once, so sessions are shared per path with a
reference count: every ``ChdbStore`` is a handle, the session closes with the
last handle. A second process gets :class:`StoreLocked`.

The engine runs one statement at a time, so who goes next matters: writes
(inserts, DDL) go before waiting reads (:class:`EngineTurns`), and a read
holds the engine at most its ``max_execution_time``. The engine's caches are
sized for a collector, not for a dedicated server (:data:`ENGINE_SETTINGS`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanledger.store.base import (
    Inserted,
    StoreError,
    StoreHandle,
    StoreLocked,
    columns_of,
    dedup_settings,
    quote_ident,
)
from spanledger.store.url import StoreUrlError
from spanledger.store.values import arrow_rows, params_text

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: Server settings of the embedded engine, given when the session starts. The
#: defaults suit a dedicated server (5 GiB mark and primary-key caches, 90% of the
#: machine's RAM); in a collector that shares the machine with its services they
#: only let memory grow. The collector mostly writes and reads little, so small
#: caches cost nothing measurable (see bench/bench_collector.py for the numbers).
#:
#: Where the engine's memory goes (chdb 4.4, measured): importing chdb costs
#: ~310 MB of RSS, ~240 MB of it the library's code pages (file-backed, shared,
#: reclaimable; RSS counts them anyway) and ~65 MB the engine itself; an insert of a
#: 35,000-span segment holds ~80 MB just to read its Arrow file into one block
#: and ~130 MB with otel_traces' indexes and the views, for the length of the
#: insert; background merges take another 60-230 MB while they run. A hard cap
#: (``max_server_memory_usage``) would turn those into failed inserts, so none is
#: set; freed memory is handed back after every insert instead (see
#: :meth:`ChdbStore._give_back_memory`).
ENGINE_SETTINGS: dict[str, int] = {
    # marks of the parts queries read (reports, merges): 5 GiB by default
    "mark_cache_size": 64 * MB,
    # primary keys and skip-index marks kept in memory: 5 GiB each by default
    "primary_index_cache_size": 32 * MB,
    "index_mark_cache_size": 16 * MB,
    # JIT-compiled expressions and per-query filter results: 128 / 100 MiB
    "compiled_expression_cache_size": 16 * MB,
    "query_condition_cache_size": 16 * MB,
}

_registry_lock = threading.Lock()


class QueryCancelled(StoreError):
    """A streamed query was stopped because its reader went away."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 394, "QUERY_WAS_CANCELLED")


class EngineTurns:
    """Whose turn the engine is: writes first, reads when no write waits.

    chdb executes one statement at a time per session, in whatever order the
    callers' threads happen to get its lock, so a stream of report queries could
    hold back the collector's inserts indefinitely. Here a read starts only when
    no write is running or waiting, and a write waits at most for the one read
    already running (which ``max_execution_time`` bounds).
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._busy = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cv:
            self._writers_waiting += 1
            try:
                while self._busy:
                    self._cv.wait()
            finally:
                self._writers_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._done()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cv:
            while self._busy or self._writers_waiting:
                self._cv.wait()
            self._busy = True
        try:
            yield
        finally:
            self._done()

    def _done(self) -> None:
        """The engine is free: wake whoever waits (a waiting write goes first)."""
        with self._cv:
            self._busy = False
            self._cv.notify_all()

    @property
    def writers_waiting(self) -> int:
        return self._writers_waiting

    @property
    def busy(self) -> bool:
        """A statement is running."""
        return self._busy


class _Shared:
    """One engine session per path, its turns, and how many handles use it."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.turns = EngineTurns()
        self.handles = 1


#: absolute path -> the shared session
_sessions: dict[str, _Shared] = {}


_STREAM_PREFIX = re.compile(r"^(?:Streaming query failed: )?(Code: \d+\. DB::Exception: )(?:\1)+")


def _error(exc: BaseException, path: str) -> StoreError:
    """Translate a chdb exception into the store's error classes (message kept)."""
    # streamed queries wrap ClickHouse's message: "Streaming query failed: Code: 241. ...
    # Code: 241. ..." -> the message once, as a query() would give it
    text = _STREAM_PREFIX.sub(r"\1", str(exc).removeprefix("Streaming query failed: "))
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


def _connection_string(path: str) -> str:
    """The session's path with :data:`ENGINE_SETTINGS` as start-up arguments."""
    if "?" in path or "&" in path:  # chdb would read them as arguments: leave the defaults
        return path
    return path + "?" + "&".join(f"{k}={v}" for k, v in ENGINE_SETTINGS.items())


def _acquire(path: str) -> _Shared:
    import chdb.session

    with _registry_lock:
        entry = _sessions.get(path)
        if entry is not None:
            entry.handles += 1
            return entry
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            with _engine_stderr_silenced():
                session = chdb.session.Session(_connection_string(path))
        except Exception as exc:  # chdb raises RuntimeError with ClickHouse's text
            raise _error(exc, path) from exc
        entry = _sessions[path] = _Shared(session)
        return entry


def _release(path: str) -> None:
    with _registry_lock:
        entry = _sessions.get(path)
        if entry is None:
            return
        entry.handles -= 1
        if entry.handles <= 0:
            del _sessions[path]
            try:
                with entry.turns.write():  # not under a running query
                    entry.session.close()
            except Exception:  # closing must never mask the caller's own error
                log.debug("closing chdb session %s failed", path, exc_info=True)


class ChdbStore(StoreHandle):
    """A handle on the embedded store at ``path`` (thread-safe, like chdb's Session)."""

    def __init__(
        self, path: str | Path, *, read_only: bool = False, url: str | None = None
    ) -> None:
        self.path = str(Path(path).expanduser().resolve())
        self.url = url or f"chdb://{self.path}"
        if read_only and not Path(self.path).is_dir():  # a reader never creates a store
            raise StoreUrlError(f"no store at {self.path}: nothing was ever written there "
                             "(check --url, or start the collector or `spanledger demo`)")
        self.read_only = read_only
        shared = _acquire(self.path)
        self._session = shared.session
        #: shared by every handle on this path: writes before waiting reads
        self.turns = shared.turns
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

    def query_stream(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
                     cancelled: Callable[[], bool] | None = None,
                     max_bytes: int | None = None) -> list[bytes]:
        """Like :meth:`query_raw`, block by block, stopping early when ``cancelled()``.

        chdb can stop a query only between the blocks of its result (its cancel
        waits for the block being computed, and before the first block for the
        whole query: measured), so ``cancelled`` is asked after each block; the
        time to the first block is bounded by the query's ``max_execution_time``
        alone. The blocks are returned, not
        written anywhere: the engine is free again before a slow client reads
        them. Only formats without a header or footer concatenate into the same
        bytes :meth:`query_raw` returns (TabSeparated, CSV, Native, JSONEachRow).
        A result past ``max_bytes`` stops the query (the engine's own
        ``max_result_bytes`` is not enforced by chdb 4.4: measured).
        """
        blocks: list[bytes] = []
        size = 0
        with self.turns.read():
            if self._closed:
                raise StoreError(f"store {self.url} is closed")
            try:
                stream = self._session.send_query(sql, fmt, params=params_text(params))
                while True:
                    block = stream.fetch()
                    if block is None:
                        break
                    blocks.append(bytes(block.bytes()))
                    size += len(blocks[-1])
                    # chdb's cancel waits for the block being computed, and before the
                    # first fetch for the whole query: so only ever after a block
                    if cancelled is not None and cancelled():
                        stream.cancel()
                        raise QueryCancelled("the client went away; query cancelled")
                    if max_bytes is not None and size > max_bytes:
                        stream.cancel()
                        raise StoreError(
                            f"Code: 396. DB::Exception: Limit for result exceeded, max bytes: "
                            f"{max_bytes / 1048576:.2f} MiB, current bytes: "
                            f"{size / 1048576:.2f} MiB. (TOO_MANY_ROWS_OR_BYTES)")
            except StoreError:
                raise
            except Exception as exc:
                raise _error(exc, self.path) from exc
            finally:
                self._give_back_memory()  # a front query may have used hundreds of MB
        return blocks

    # -- writes ----------------------------------------------------------------
    def command(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        self._check_writable()
        if settings:
            sql = _with_settings(sql, settings)
        self._run(sql, "CSV", None, write=True)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self._check_writable()
        if data.num_rows == 0:
            return
        # chdb's Python() table function finds the Arrow table by its variable
        # name in the calling frames: keep the local called ``arrow_data``.
        arrow_data = data  # noqa: F841  (read by chdb through the frame)
        self._run(_insert_sql(table, data.column_names, "Python(arrow_data)",
                              dedup_settings(dedup_token)), "CSV", None, write=True)

    def insert_arrow_file(
        self, table: str, path: str | Path, dedup_token: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Inserted:
        """The engine reads the file itself (``file(..., 'ArrowStream')``).

        Unlike an insert from a Python object, the read releases the GIL, so the
        collector's receivers keep answering meanwhile. One reading thread makes
        one insert block: the dedup token covers exactly the file's rows however
        often it is replayed.

        The rows written are the table's count after minus before, in the same
        turn of the engine: chdb's own "rows written" counts a replay that
        deduplication skipped, and every view's rows besides. Only this process
        writes the embedded store, so the difference is this insert's.
        """
        self._check_writable()
        source = Path(path).resolve()
        with pa.memory_map(str(source)) as fh:  # mapped: counting rows copies nothing
            reader = pa.ipc.open_stream(fh)
            columns = reader.schema.names
            rows = sum(batch.num_rows for batch in reader)
        every = {**dedup_settings(dedup_token), "max_threads": 1, "max_insert_threads": 1,
                 **(settings or {})}
        sql = _insert_sql(table, columns, f"file({_literal(str(source))}, 'ArrowStream')", every)
        count = f"SELECT count() FROM {quote_ident(table)}"
        with self.turns.write():
            before = int(self._run(count, "CSV", None, turn=False).bytes())
            try:
                self._run(sql, "CSV", None, turn=False)
            except StoreError as exc:  # a view may fail after the table took the rows
                with contextlib.suppress(StoreError, ValueError):
                    after = int(self._run(count, "CSV", None, turn=False).bytes())
                    exc.written = min(max(after - before, 0), rows)
                raise
            after = int(self._run(count, "CSV", None, turn=False).bytes())
            self._give_back_memory()
        return Inserted(rows, min(max(after - before, 0), rows))

    def _give_back_memory(self) -> None:
        """Return the memory the last statement freed to the OS (the caller holds the turn).

        The engine's allocator (jemalloc) keeps freed pages for reuse and lets
        them go only after its decay time, so under a steady stream of inserts
        the collector's RSS settled ~250 MB above what it uses. A purge costs
        under a millisecond when little is free and ~80 ms after a 35,000-span
        insert (measured); the alternative, no decay at all
        (``JE_MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0`` in the environment),
        saves another ~100 MB at the peak but costs ~15% of the throughput.
        """
        with contextlib.suppress(StoreError):
            self._run("SYSTEM JEMALLOC PURGE", "CSV", None, turn=False)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _release(self.path)

    # -- internals -------------------------------------------------------------

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None, *, write: bool = False,
             turn: bool = True) -> Any:
        """One statement in its turn (``turn=False``: the caller holds the turn)."""
        if not turn:
            return self._query(sql, fmt, params)
        with self.turns.write() if write else self.turns.read():
            return self._query(sql, fmt, params)

    def _query(self, sql: str, fmt: str, params: dict[str, Any] | None) -> Any:
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
