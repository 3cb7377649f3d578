"""Decide whether a SQL text is a harmless read, with ClickHouse's own parser.

The embedded engine has no users or grants, so the SQL HTTP front must refuse
writes itself, and chdb does not honour ``readonly = 1`` for ``INTO OUTFILE``.
A hand-written tokenizer cannot be trusted with that decision: ClickHouse's
lexer treats some Unicode spaces (U+200B...) as whitespace, nests ``/* */``
comments and accepts ``$$heredocs$$``, and every disagreement between our
reading and the engine's is a way to write files. So the engine decides:

1. ``formatQuerySingleLine('<the text as a string literal>')`` parses the text
   with ClickHouse's parser and prints it back canonically (no comments, one
   statement: a second one is a syntax error). The text travels as a quoted
   literal, never as SQL, so this step cannot execute anything.
2. ``EXPLAIN AST <canonical text>`` dumps the parse tree of exactly the text
   that will run. The allow decision walks that tree: one read statement
   (SELECT/WITH, SHOW TABLES/DATABASES/COLUMNS/CREATE, DESCRIBE, EXISTS,
   EXPLAIN of a SELECT), no ``INTO OUTFILE`` (a literal child of the statement),
   no ``SETTINGS`` anywhere, no table function but a few generators (the list of
   table functions comes from the engine's ``system.table_functions``), no
   scalar function that reads files or server paths, only the ``default``,
   ``information_schema`` and a short list of ``system`` tables (none that
   disclose paths or other sessions' queries).
3. The canonical text runs with our ``SETTINGS readonly = 1`` and resource
   limits appended (the statement has no settings of its own, so ours are the
   only ones).

What is checked is what runs: the canonical text. A tree dump can gain extra
lines from a back-quoted name holding a newline; such lines can only add
nodes, so they can only make a query refused, never hide a node.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from spanledger.store.base import StoreError


class RefusedQuery(ValueError):
    """The SQL is not a plain read; ``code``/``name`` mirror ClickHouse's error."""

    def __init__(self, message: str, code: int = 164, name: str = "READONLY") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class RawQueryStore(Protocol):
    def query_raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes: ...


#: statement kinds (root node of the tree) that only read
READ_STATEMENTS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "ShowTables", "ShowCreateTableQuery",
    "ShowCreateViewQuery", "ShowCreateDatabaseQuery",
    "ShowCreateDictionaryQuery", "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery",
    "ExistsViewQuery", "ExistsDictionaryQuery", "Explain",
})  # fmt: skip
#: statements whose first name children are the object's names, not a FORMAT
_NAMED_STATEMENTS = frozenset({
    "ShowCreateTableQuery", "ShowCreateViewQuery", "ShowCreateDatabaseQuery",
    "ShowCreateDictionaryQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery",
    "ExistsDictionaryQuery",
})  # fmt: skip
#: EXPLAIN kinds that only describe a query (none runs it)
EXPLAIN_KINDS = frozenset({
    "EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN PLAN", "EXPLAIN PIPELINE",
    "EXPLAIN ESTIMATE", "EXPLAIN QUERY TREE",
})  # fmt: skip
#: table functions that generate rows in memory (lower case); every other table
#: function the engine knows reads or writes outside the database
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series",
    "generateseries", "null", "view", "format", "primes",
})  # fmt: skip
#: scalar functions that read files or disclose server paths and settings (lower case)
DENIED_SCALAR_FUNCTIONS = frozenset({
    "file", "getserversetting", "getmacro", "filesystemavailable", "filesystemcapacity",
    "filesystemunreserved", "filesystemfree",
})  # fmt: skip
#: system tables a dashboard or driver may read: none discloses file paths,
#: other sessions' queries, users or grants
ALLOWED_SYSTEM_TABLES = frozenset({
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "primes", "settings", "functions",
    "table_functions", "formats", "data_type_families", "collations", "time_zones", "columns",
    "tables", "databases", "table_engines", "aggregate_function_combinators", "contributors",
    "keywords", "metrics", "events", "codecs", "database_engines", "merge_tree_settings",
})  # fmt: skip
#: system tables with path columns: readable by named columns only, none of them a path
PATH_TABLES = frozenset({"tables", "databases"})
ALLOWED_DATABASES = frozenset({"default", "system", "information_schema"})
#: nodes that select every column (they would include path columns)
_WILDCARDS = frozenset({
    "Asterisk", "QualifiedAsterisk", "ColumnsRegexpMatcher", "ColumnsListMatcher",
    "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher",
})  # fmt: skip
#: longest query text we parse (ClickHouse's own default max_query_size)
MAX_QUERY_BYTES = 262_144

_LINE = re.compile(r"^( *)(\S+) ?(.*)$")
_SUFFIX = re.compile(r"\s*(?:\(alias .*?\))?\s*(?:\(children \d+\))?$")


@dataclass(frozen=True, slots=True)
class Node:
    depth: int
    kind: str
    text: str  # the rest of the dump line, without "(alias ...)" / "(children N)"
    parent: str = ""  # the kind of the enclosing node ("" for the root)


@dataclass(frozen=True, slots=True)
class ReadQuery:
    """A statement judged to be a plain read."""

    #: ClickHouse's canonical single-line text of it: what runs, settings appended by the caller
    text: str
    #: its FORMAT clause, if any
    fmt: str | None


def sql_literal(text: str) -> str:
    """``text`` as a ClickHouse string literal: escaping backslash and quote suffices
    (nothing else ends one), so the text is data to the parser, never SQL."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_dump(dump: str) -> list[Node]:
    """The lines of an ``EXPLAIN AST`` dump as nodes (depth = leading spaces)."""
    nodes: list[Node] = []
    stack: list[Node] = []  # the path from the root to the previous node
    for line in dump.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise RefusedQuery("the query's syntax tree could not be read")
        depth = len(m.group(1))
        del stack[depth:]
        parent = stack[-1].kind if stack else ""
        node = Node(depth, m.group(2), _SUFFIX.sub("", m.group(3)), parent)
        stack.append(node)
        nodes.append(node)
    return nodes


class ReadOnlyGate:
    """Judges SQL texts on ``store`` (any backend with ``query_raw``); thread-safe."""

    def __init__(self, store: RawQueryStore) -> None:
        self.store = store
        self._denied_tables: frozenset[str] | None = None
        self._lock = threading.Lock()

    def denied_table_functions(self) -> frozenset[str]:
        """Every table function the engine knows but the generators (lower case)."""
        with self._lock:
            if self._denied_tables is None:
                raw = self.store.query_raw(
                    "SELECT name FROM system.table_functions", "TabSeparatedRaw")
                names = {n.strip().lower() for n in raw.decode().splitlines() if n.strip()}
                self._denied_tables = frozenset(names - ALLOWED_TABLE_FUNCTIONS)
            return self._denied_tables

    def canonical(self, sql: str) -> str:
        """ClickHouse's own single-line rendering of ``sql``; RefusedQuery on a syntax error."""
        if "\x00" in sql:
            raise RefusedQuery("the query contains a NUL character", 62, "SYNTAX_ERROR")
        if len(sql.encode()) > MAX_QUERY_BYTES:
            raise RefusedQuery(f"the query is longer than {MAX_QUERY_BYTES} bytes", 62,
                               "SYNTAX_ERROR")
        try:
            raw = self.store.query_raw(
                f"SELECT formatQuerySingleLine({sql_literal(sql)})", "RawBLOB")
        except StoreError as exc:
            raise _syntax_error(str(exc)) from None
        text = raw.decode()
        if not text.strip():
            raise RefusedQuery("empty query", 62, "SYNTAX_ERROR")
        return text

    def check(self, sql: str, params: dict[str, str] | None = None) -> ReadQuery:
        """Raise RefusedQuery unless ``sql`` is one plain read; return what to run."""
        text = self.canonical(sql)
        verb = text.split(None, 1)[0].upper()
        if verb not in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "("):
            raise RefusedQuery(
                f"this endpoint is read-only: {verb} is not allowed "
                "(only SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN)"
            )
        try:
            dump = self.store.query_raw(f"EXPLAIN AST {text}", "TabSeparatedRaw", params)
        except StoreError as exc:
            message = str(exc)
            if "UNKNOWN_QUERY_PARAMETER" in message or "Substitution" in message:
                raise RefusedQuery(message.strip(), 456, "UNKNOWN_QUERY_PARAMETER") from None
            raise _syntax_error(message) from None
        fmt = self.judge(parse_dump(dump.decode(errors="replace")), text)
        return ReadQuery(text, fmt)

    def judge(self, nodes: list[Node], text: str) -> str | None:
        """Refuse anything but a plain read; return the statement's FORMAT name, if any."""
        if not nodes:
            raise RefusedQuery("empty query", 62, "SYNTAX_ERROR")
        root = nodes[0]
        if root.depth != 0 or root.kind not in READ_STATEMENTS:
            raise RefusedQuery(f"this endpoint is read-only: {root.kind} is not allowed")
        if any(n.depth == 0 for n in nodes[1:]):
            raise RefusedQuery("the query's syntax tree could not be read")
        if root.kind == "Explain":
            kind = root.text.strip()
            if kind not in EXPLAIN_KINDS:
                raise RefusedQuery(f"this endpoint is read-only: {kind} is not allowed")
            inner = [n for n in nodes[1:] if n.depth == 1 and n.kind != "Set"]
            if not inner or inner[0].kind not in ("SelectWithUnionQuery",
                                                  "SelectIntersectExceptQuery"):
                raise RefusedQuery("this endpoint is read-only: only EXPLAIN of a SELECT "
                                   "is allowed")
        fmt = _statement_clauses(root, nodes, text)
        denied_tables = self.denied_table_functions()
        reads_path_table = False
        for node in nodes:
            kind = node.kind
            if kind == "Set":
                raise RefusedQuery("this endpoint is read-only: a SETTINGS clause is not allowed")
            if kind == "Function":
                name = node.text.split(" ", 1)[0]
                lowered = name.lower()
                if lowered in denied_tables or lowered in DENIED_SCALAR_FUNCTIONS:
                    raise RefusedQuery(
                        f"this endpoint is read-only: function {name}() reaches outside "
                        "the database and is not allowed"
                    )
            elif kind in ("TableIdentifier", "Identifier"):
                reads_path_table |= _check_name(node.text, table=kind == "TableIdentifier")
        if reads_path_table:
            for node in nodes:
                if node.kind in _WILDCARDS:
                    raise RefusedQuery(
                        "system.tables and system.databases are readable by named columns "
                        "only (no *, COLUMNS())", 497, "ACCESS_DENIED")
                if node.kind == "Identifier" and "path" in node.text.rsplit(".", 1)[-1].lower():
                    raise RefusedQuery(f"column {node.text} discloses server paths", 497,
                                       "ACCESS_DENIED")
        return fmt


def _statement_clauses(root: Node, nodes: list[Node], text: str) -> str | None:
    """The statement's own children: INTO OUTFILE is a literal there, FORMAT the last name.

    A name child is the FORMAT only when the canonical text ends with that clause
    (``SHOW TABLES FROM system`` has a name child that is a database).
    """
    # a literal right under a statement node, at any depth (EXPLAIN nests statements),
    # is an INTO OUTFILE target or its COMPRESSION: nothing else puts one there
    if any(n.kind == "Literal" and n.parent in READ_STATEMENTS for n in nodes):
        raise RefusedQuery("this endpoint is read-only: INTO OUTFILE is not allowed")
    children = [n for n in nodes[1:] if n.depth == 1]
    if root.kind in _NAMED_STATEMENTS:
        names = root.text.split()
        if len(names) == 2:
            _check_name(".".join(names), table=True)
    names = [n for n in children if n.kind == "Identifier"]
    if names and text.endswith(" FORMAT " + names[-1].text):
        return names[-1].text
    return None


def _check_name(name: str, *, table: bool) -> bool:
    """Refuse tables of other databases and disclosing system tables; True for a path table."""
    if "." not in name:
        return False  # a column, or a table of the current database (default)
    database, _, rest = name.partition(".")
    database = database.lower()
    if database == "system":
        table_name = rest.split(".", 1)[0].lower()
        if table_name not in ALLOWED_SYSTEM_TABLES:
            raise RefusedQuery(f"table system.{table_name} is not readable through this "
                               "endpoint", 497, "ACCESS_DENIED")
        return table_name in PATH_TABLES
    if table and database not in ALLOWED_DATABASES:
        raise RefusedQuery(f"Database {database} does not exist", 81, "UNKNOWN_DATABASE")
    return False


def _syntax_error(message: str) -> RefusedQuery:
    """ClickHouse's parser message, without the wrapper query we sent it in."""
    text = message.strip()
    if "Multi-statements are not allowed" in text:
        return RefusedQuery("multi-statements are not allowed", 62, "SYNTAX_ERROR")
    text = re.sub(r"\s*: In scope SELECT formatQuerySingleLine\(.*", "", text, flags=re.S)
    m = re.search(r"Code:\s*(\d+)\.\s*DB::Exception:\s*(.*?)(?:\s*\(([A-Z_]+)\))?\s*"
                  r"(?:\(version [^)]*\))?\s*$", text, flags=re.S)
    if m:
        code = int(m.group(1))
        return RefusedQuery(m.group(2).strip().rstrip("."), code, m.group(3) or "SYNTAX_ERROR")
    return RefusedQuery(text or "syntax error", 62, "SYNTAX_ERROR")
