"""Where the files that ship with spanledger live, installed or in a checkout.

The public layout keeps migrations in ``clickhouse/`` and configs in
``collector-config/`` at the repo top; the wheel carries them under
``spanledger/_data/``. One lookup serves both so no caller guesses paths.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Directory ``name`` (``clickhouse`` or ``collector-config``) for this install."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"spanledger data directory {name!r} is missing from this install")
