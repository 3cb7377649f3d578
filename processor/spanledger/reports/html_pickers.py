"""The live report's pickers: period, team and feature, as a plain GET form (no JavaScript).

Only the page the collector serves at ``/report`` has them (a saved file has
no server to ask); they are hidden when the page is printed. Untagged rows are
picked as ``(unattributed)``, like ``--team``/``--feature`` on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from spanledger.reports.chargeback import UNATTRIBUTED


@dataclass(frozen=True, slots=True)
class Pickers:
    """The form's choices and what is selected now."""

    action: str
    #: months offered (YYYY-MM), newest first
    months: list[str]
    #: teams and features seen recently ("" = untagged)
    teams: list[str]
    features: list[str]
    period: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    team: str | None = None
    feature: str | None = None
    #: carried along unchanged (e.g. the token the page was opened with)
    hidden: dict[str, str] = field(default_factory=dict)


def _options(values: list[str], selected: str | None, everything: str) -> str:
    out = [f'<option value=""{" selected" if selected is None else ""}>{escape(everything)}'
           "</option>"]
    for v in values:
        shown = v if v else UNATTRIBUTED
        mark = " selected" if selected == v else ""
        out.append(f'<option value="{escape(shown)}"{mark}>{escape(shown)}</option>')
    return "".join(out)


def render_pickers(p: Pickers | None) -> str:
    if p is None:
        return ""
    months = "".join(f'<option value="{m}"{" selected" if m == p.period else ""}>{m}</option>'
                     for m in p.months)
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in p.hidden.items())
    return (f'<form class="pickers" method="get" action="{escape(p.action)}">'
            f'<label>month <select name="period"><option value=""'
            f'{" selected" if p.period is None else ""}>from / to</option>{months}</select>'
            f'</label>'
            f'<label>from <input type="date" name="from" value="{escape(p.date_from or "")}">'
            f'</label>'
            f'<label>to <input type="date" name="to" value="{escape(p.date_to or "")}"></label>'
            f'<label>team <select name="team">{_options(p.teams, p.team, "all teams")}</select>'
            f'</label>'
            f'<label>feature <select name="feature">'
            f'{_options(p.features, p.feature, "all features")}</select></label>'
            f'{hidden}<button type="submit">Show</button></form>')
