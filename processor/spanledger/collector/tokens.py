"""The collector's tokens file: who may write spans for which services and teams, who may read.

A chargeback is an invoice between teams, so the collector must know who sent a
span before it believes the team the span names. Each token in the file has a
name (stamped on every span it sends), a secret, a role and, for writers, what
it may attribute spend to::

    tokens:
      support-bot:
        role: write                 # write: OTLP; read: SQL front, /report, /budgets/state
        sha256: 9f86d08...          # or secret_env: VAR, or secret: literal (warned)
        services: [support-bot]     # service.name values it may send
        teams: [support]            # spanledger.team values it may claim
        cost_centers: [cc-1001]     # spanledger.cost_center values it may claim

Patterns are exact, ``*`` (any) or a prefix ending in ``*`` (``support-*``). An
empty claim (no team) is always allowed: it claims nobody's budget.

The secret is best kept out of the file: ``sha256`` (hex digest of the token, so
the file can be committed) or ``secret_env`` (read when the collector starts).
A literal ``secret`` works and is warned about. A presented token is found by its
SHA-256 digest: a lookup whose timing can only tell an attacker about digests,
which says nothing about any secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from spanledger import yamlconf

log = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
#: the name the shared ``auth.bearer_token`` goes by when a tokens file is used too
SHARED_TOKEN_NAME = "shared"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def _text(value: Any) -> Any:
    """YAML scalars in lists reach the model resolved (``2024`` is an int): names are text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Name = Annotated[str, BeforeValidator(_text), Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class Patterns:
    """Allowed values of one attribution column: exact names, prefixes (``x-*``), or any."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    any: bool = False

    @classmethod
    def of(cls, items: list[str]) -> Patterns:
        if "*" in items:
            return cls(any=True)
        return cls(frozenset(i for i in items if not i.endswith("*")),
                   tuple(i[:-1] for i in items if i.endswith("*")))

    def allows(self, value: str) -> bool:
        """May ``value`` be claimed? (the empty claim always may)"""
        if not value or self.any or value in self.exact:
            return True
        return any(value.startswith(p) for p in self.prefixes)


#: a grant that allows every claim (the shared bearer token)
ANYTHING = Patterns(any=True)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a write token may attribute spend to (picklable: it travels to the workers)."""

    services: Patterns = ANYTHING
    teams: Patterns = ANYTHING
    cost_centers: Patterns = ANYTHING

    @property
    def unrestricted(self) -> bool:
        return self.services.any and self.teams.any and self.cost_centers.any


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    roles: frozenset[str]
    #: None for a read-only token
    grant: Grant | None = None

    def may(self, role: str) -> bool:
        return role in self.roles


class TokenEntry(BaseModel):
    """One token of the file (the mapping key is its name)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    #: write (OTLP), read (SQL front, /report, /budgets/state), or both as a list
    role: Literal["read", "write"] | list[Literal["read", "write"]]
    #: hex SHA-256 of the token (the file may then be committed)
    sha256: Annotated[str | None, BeforeValidator(_text)] = None
    #: environment variable that holds the token (read at start)
    secret_env: str | None = None
    #: the token itself, in clear (works, and is warned about)
    secret: Annotated[str | None, BeforeValidator(_text)] = None
    services: list[Name] | None = None
    teams: list[Name] = Field(default_factory=list)
    cost_centers: list[Name] = Field(default_factory=list)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset([self.role] if isinstance(self.role, str) else self.role)


class TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tokens: dict[str, TokenEntry]


class TokenBook:
    """The tokens of a file (plus the shared bearer token): find one by what a client presents."""

    def __init__(self, tokens: list[tuple[Token, bytes]], file: str = "") -> None:
        self.file = file
        self.tokens = tuple(t for t, _ in tokens)
        self._by_digest: dict[bytes, Token] = {}
        for token, digest in tokens:
            other = self._by_digest.get(digest)
            if other is not None:
                raise yamlconf.ConfigError(file, None, f"tokens.{token.name}",
                                           f"the same secret as token {other.name!r}")
            self._by_digest[digest] = token

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is, or None."""
        if not secret:
            return None
        return self._by_digest.get(hashlib.sha256(secret.encode()).digest())

    def grants(self) -> dict[str, Grant]:
        """Write tokens by name: what the conversion workers check each span against."""
        return {t.name: t.grant for t in self.tokens if t.grant is not None}

    def with_shared(self, secret: str | None) -> TokenBook:
        """This book plus the shared bearer token: read, write, any attribution."""
        if not secret:
            return self
        pairs = [(t, d) for d, t in self._by_digest.items()]
        shared = Token(SHARED_TOKEN_NAME, frozenset({READ, WRITE}), Grant())
        return TokenBook([*pairs, (shared, hashlib.sha256(secret.encode()).digest())],
                         self.file)


@dataclass
class _Loaded:
    pairs: list[tuple[Token, bytes]] = field(default_factory=list)
    clear: list[str] = field(default_factory=list)


def load_tokens(path: str | Path) -> TokenBook:
    """The tokens file at ``path``; every mistake is ``file:line: key: problem``."""
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with tokens:")
    parsed = yamlconf.validate(root, TokensFile)
    loaded = _Loaded()
    node = root.child("tokens")
    for name, entry in parsed.tokens.items():
        where = node.child(name)
        if not _NAME.match(name):
            raise where.error("a token name is 1-64 letters, digits, '.', '_' or '-' "
                              "(it is stamped on every span the token sends)")
        if name == SHARED_TOKEN_NAME:
            raise where.error(f"{name!r} is the name of the shared auth.bearer_token")
        _check(entry, where)
        loaded.pairs.append((_token(name, entry), _digest(entry, where)))
        if entry.secret is not None:
            loaded.clear.append(name)
    if loaded.clear:
        log.warning("%s: token(s) %s hold their secret in clear; put its sha256 (or "
                    "secret_env: VARIABLE) there instead", path, ", ".join(loaded.clear))
    return TokenBook(loaded.pairs, str(path))


def _check(entry: TokenEntry, where: yamlconf.Node) -> None:
    """What one key alone cannot say: one secret, and grants on write tokens only."""
    given = [k for k in ("sha256", "secret_env", "secret") if getattr(entry, k) is not None]
    if len(given) != 1:
        raise where.error("needs exactly one of sha256, secret_env, secret "
                          f"(got {', '.join(given) or 'none'})")
    if entry.sha256 is not None and not _HEX.match(entry.sha256):
        raise where.child("sha256").error("expected 64 hex digits (the SHA-256 of the token)")
    if entry.secret is not None and not entry.secret:
        raise where.child("secret").error("must not be empty")
    if WRITE in entry.roles:
        if entry.services is None:
            raise where.error("a write token needs services: (the service.name values it may "
                              'send; ["*"] for any)')
    elif entry.services is not None or entry.teams or entry.cost_centers:
        raise where.error("services, teams and cost_centers are for write tokens only")


def _token(name: str, entry: TokenEntry) -> Token:
    grant = None
    if WRITE in entry.roles:
        grant = Grant(Patterns.of(entry.services or []), Patterns.of(entry.teams),
                      Patterns.of(entry.cost_centers))
    return Token(name, entry.roles, grant)


def _digest(entry: TokenEntry, where: yamlconf.Node) -> bytes:
    if entry.sha256 is not None:
        return bytes.fromhex(entry.sha256)
    if entry.secret_env is not None:
        value = os.environ.get(entry.secret_env, "")
        if not value:
            raise where.child("secret_env").error(
                f"the variable {entry.secret_env} is not set or empty")
        return hashlib.sha256(value.encode()).digest()
    assert entry.secret is not None
    return hashlib.sha256(entry.secret.encode()).digest()


__all__ = ["ANYTHING", "READ", "SHARED_TOKEN_NAME", "WRITE", "Grant", "Patterns", "Token",
           "TokenBook", "load_tokens"]
