"""The invoice for ``report spend --model proportional --invoice FILE``, from cost exports.

The exports :mod:`.readers` reads carry the bill line by line (day x model x
token type); summed per provider/model over the report period they are the
lines a proportional split charges separately, so a team that only called the
cheap model is not charged for another team's expensive one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from spanledger.errors import UsageError
from spanledger.reconcile.readers import read_exports
from spanledger.reports.chargeback import InvoiceLines
from spanledger.reports.model_keys import model_key
from spanledger.reports.period import Period


def invoice_lines(files: Sequence[str | Path], period: Period) -> InvoiceLines:
    """The cost exports' amounts in ``period``, summed per provider/model."""
    lines: dict[tuple[str, str], Decimal] = {}
    for export in read_exports(files):
        if export.kind != "cost":
            raise UsageError(f"--invoice {export.file}: a {export.format} export counts tokens "
                             "but has no amounts: pass the provider's cost export")
        for ln in export.lines:
            if ln.amount is None or not period.start <= ln.day <= period.end:
                continue
            key = (ln.provider, model_key(ln.provider, ln.model) if ln.model else ln.token_type)
            lines[key] = lines.get(key, Decimal(0)) + ln.amount
    if not lines:
        raise UsageError(f"--invoice: no amounts in {period.label} in "
                         + ", ".join(str(f) for f in files))
    return InvoiceLines(lines, tuple(Path(f).name for f in files))
