"""Decide whether a SQL text is a harmless read, before the engine sees it.

The embedded engine has no users or grants, so the SQL HTTP front must refuse
writes itself. Two fences: this conservative check (one statement, starting
with SELECT / WITH / SHOW / DESCRIBE / EXISTS / EXPLAIN, no table function or
clause that reaches files, URLs, other servers or Python objects, no
SETTINGS of its own, no INTO OUTFILE) and ClickHouse's own ``readonly = 1``
appended to every query it runs. chdb honours ``readonly`` per query, but not
for ``INTO OUTFILE`` and not with ``readonly = 2`` for ``file()``, hence both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

READ_KEYWORDS = frozenset({"select", "with", "show", "describe", "desc", "exists", "explain"})

#: Table (and scalar) functions that read or write outside the database,
#: lower-cased. Source: ClickHouse docs "Table Functions" list.
DENIED_FUNCTIONS = frozenset(
    {
        "file", "filecluster", "filesystem", "url", "urlcluster", "python", "jdbc", "odbc",
        "sqlite",
        "redis", "executable", "executablepool", "input", "gcs", "oss", "cosn",
        "arrowflight", "ytsaurus", "fuzzjson", "fuzzquery", "zookeeper", "dictionary",
        "prometheusquery", "prometheusqueryrange", "timeseriesdata", "timeseriesmetrics",
        "timeseriestags", "mergetreeindex", "mergetreeprojection",
    }
)  # fmt: skip
DENIED_PREFIXES = (
    "s3", "hdfs", "remote", "cluster", "mysql", "postgres", "mongo", "azure",
    "iceberg", "deltalake", "hudi", "paimon", "hive",
)  # fmt: skip


class RefusedQuery(ValueError):
    """The SQL is not a plain read; ``code``/``name`` mirror ClickHouse's error."""

    def __init__(self, message: str, code: int = 164, name: str = "READONLY") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "quoted", "number", "punct"
    text: str


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")


def tokenize(sql: str) -> list[Token]:
    """ClickHouse-ish tokens; comments dropped. Raises RefusedQuery on text it cannot judge."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise RefusedQuery("unterminated comment", 62, "SYNTAX_ERROR")
            i = end + 2
        elif ch in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise RefusedQuery("unterminated quoted text", 62, "SYNTAX_ERROR")
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            tokens.append(Token("string" if ch == "'" else "quoted", sql[i : j + 1]))
            i = j + 1
        elif ch in "#$":
            # '# ' comments and $$heredoc$$ strings: rare in reads, easy to misjudge
            raise RefusedQuery(f"character {ch!r} is not accepted by this read-only endpoint")
        elif m := _WORD.match(sql, i):
            tokens.append(Token("word", m.group()))
            i = m.end()
        elif m := _NUMBER.match(sql, i):
            tokens.append(Token("number", m.group()))
            i = m.end()
        else:
            tokens.append(Token("punct", ch))
            i += 1
    return tokens


def check_read_only(sql: str) -> str | None:
    """Raise RefusedQuery unless ``sql`` is one plain read; return its FORMAT name, if any."""
    tokens = tokenize(sql)
    while tokens and tokens[-1] == Token("punct", ";"):
        tokens.pop()
    if not tokens:
        raise RefusedQuery("empty query", 62, "SYNTAX_ERROR")
    if any(t == Token("punct", ";") for t in tokens):
        raise RefusedQuery("multi-statements are not allowed", 62, "SYNTAX_ERROR")
    first = next((t for t in tokens if t.text != "("), tokens[0])
    if first.kind != "word" or first.text.lower() not in READ_KEYWORDS:
        raise RefusedQuery(
            f"this endpoint is read-only: {first.text.upper()} is not allowed "
            "(only SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN)"
        )
    fmt: str | None = None
    for idx, tok in enumerate(tokens):
        nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None
        if tok.kind == "quoted" and nxt is not None and nxt.text == "(":
            # `file`(...) and "file"(...) call the same function as file(...)
            _check_function(tok.text[1:-1])
            continue
        if tok.kind != "word":
            continue
        prev = tokens[idx - 1] if idx else None
        if prev is not None and prev.text == ".":
            continue  # a qualified name such as system.settings
        word = tok.text.lower()
        if nxt is not None and nxt.text == "(":
            _check_function(tok.text)
            continue
        if word == "into" and nxt is not None and nxt.text.lower() in ("outfile", "table"):
            raise RefusedQuery("this endpoint is read-only: INTO OUTFILE is not allowed")
        if word == "settings":
            raise RefusedQuery("this endpoint is read-only: a SETTINGS clause is not allowed")
        if word == "format" and nxt is not None and nxt.kind == "word":
            fmt = nxt.text
    return fmt


def _check_function(name: str) -> None:
    lowered = name.lower()
    if lowered in DENIED_FUNCTIONS or lowered.startswith(DENIED_PREFIXES):
        raise RefusedQuery(
            f"this endpoint is read-only: function {name}() reaches outside "
            "the database and is not allowed"
        )
