"""Errors every layer may raise for the command line to report.

A report builder or the demo runner finds the user's mistake (a bad month,
an unknown ``--by`` dimension, ``--calls`` too small) deep below the command
line; raising :class:`UsageError` from here lets it say so without importing
the CLI, so no layer reaches up to ``spanledger.cli``. ``spanledger.cli.main``
turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class UsageError(Exception):
    """A user's mistake on the command line: printed as one line, exit 2."""
