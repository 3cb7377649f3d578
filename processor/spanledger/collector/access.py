"""Who may do what at the collector's doors: one decision for every endpoint.

Three setups, one object:

- no auth at all: everything is open (a laptop, the demo);
- one shared bearer token (``auth.bearer_token`` / ``$SPANLEDGER_COLLECTOR_TOKEN``):
  it may write, read and attribute to anyone; nothing is stamped on spans, as before;
- a tokens file (:mod:`.tokens`): write tokens for OTLP, each bound to the
  services, teams and cost centres it may claim (the intake stamps the token's name
  on every resource it sends, the conversion checks the claims), read tokens for
  the SQL front, ``/report`` and ``/budgets/state``. A shared bearer token next to
  the file keeps working as the token named ``shared`` (read and write, any claim).

The read check is a plain function of the offered secrets (:meth:`Access.can_read`,
:meth:`Access.read_header`), so any page served by the collector can call it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

from spanledger.collector.attribution_policy import AttributionPolicy
from spanledger.collector.tokens import READ, WRITE, Grant, Token, TokenBook, load_tokens

#: what an open collector (no auth) treats every writer as: nothing is stamped
OPEN = Token("", frozenset({READ, WRITE}), Grant())


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


class Access:
    """The collector's auth: ``token`` (the shared bearer token), ``book`` (a tokens file)."""

    def __init__(self, token: str | None = None, book: TokenBook | None = None) -> None:
        self.token = token or None
        self.book = book.with_shared(self.token) if book is not None else None

    @classmethod
    def load(cls, token: str | None, tokens_file: str | Path | None) -> Access:
        """The auth of a collector config (a bad tokens file: ``file:line: key: problem``)."""
        return cls(token, load_tokens(tokens_file) if tokens_file else None)

    @property
    def open(self) -> bool:
        return self.token is None and self.book is None

    @property
    def stamps(self) -> bool:
        """Are write tokens bound to attribution (a tokens file)? Then spans are stamped."""
        return self.book is not None

    def policy(self) -> AttributionPolicy | None:
        """What each write token may claim, for the conversion (None: nothing is checked)."""
        return AttributionPolicy(self.book.grants()) if self.book is not None else None

    def find(self, secret: str | None) -> Token | None:
        if self.open:
            return OPEN
        if not secret:
            return None
        if self.book is not None:
            return self.book.find(secret)
        assert self.token is not None
        if hmac.compare_digest(secret.encode(), self.token.encode()):
            return OPEN
        return None

    def writer(self, header: str | None) -> Token | None:
        """The token an OTLP request's ``Authorization`` header names, if it may write."""
        token = self.find(bearer(header))
        return token if token is not None and token.may(WRITE) else None

    def can_read(self, offered: Iterable[str]) -> bool:
        """Is any of the offered secrets a read token? (the SQL front's check)"""
        if self.open:
            return True
        for secret in offered:
            token = self.find(secret)
            if token is not None and token.may(READ):
                return True
        return False

    def read_header(self, header: str | None) -> bool:
        """Does this ``Authorization`` header carry a read token? (/budgets/state, /report)"""
        return self.open or self.can_read([s for s in (bearer(header),) if s])


__all__ = ["OPEN", "Access", "bearer"]
