"""Storage URLs: ``chdb://PATH`` or ``http(s)://user:password@host:port/database``.

Parsing lives apart from the backends so the CLI can reject a bad URL (exit 2)
before anything is opened, and every command reads the same default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from spanledger.store.base import StoreError

ENV_VAR = "SPANLEDGER_CLICKHOUSE_URL"
DEFAULT_URL = "chdb://./spanledger-data"


class StoreUrlError(StoreError, ValueError):
    """The storage URL itself is wrong (a user's mistake: the CLI exits 2)."""


@dataclass(frozen=True)
class StoreUrl:
    scheme: str  # "chdb", "http" or "https"
    path: str = ""  # chdb: the store directory
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    database: str = "default"
    raw: str = ""

    @property
    def is_chdb(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        if self.is_chdb:
            return f"chdb://{self.path}"
        return f"{self.scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def resolve_url(url: str | None) -> str:
    """``url``, else $SPANLEDGER_CLICKHOUSE_URL, else the default embedded store."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def parse_url(url: str | None) -> StoreUrl:
    text = resolve_url(url).strip()
    if text.startswith("chdb://"):
        path = text[len("chdb://") :]
        if not path:
            raise StoreUrlError(f"storage URL {text!r} has no path (e.g. chdb://./spanledger-data)")
        return StoreUrl("chdb", path=path, raw=text)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise StoreUrlError(
            f"storage URL {text!r} is neither chdb://PATH nor "
            "http(s)://user:password@host:port/database"
        )
    try:
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
    except ValueError as exc:
        raise StoreUrlError(f"storage URL {text!r} has a bad port") from exc
    if not parts.hostname:
        raise StoreUrlError(f"storage URL {text!r} has no host")
    database = unquote(parts.path.strip("/")) or "default"
    if "/" in database:
        raise StoreUrlError(f"storage URL {text!r}: the path must be one database name")
    return StoreUrl(
        parts.scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database,
        raw=text,
    )
