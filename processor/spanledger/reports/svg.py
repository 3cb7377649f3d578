"""Small inline SVG charts for the HTML report (no JavaScript, no external files).

Charts are what people look at, so each one has a title, labelled axes, a
legend where colours carry meaning, and dollar values written on the bars.
Geometry uses floats (pixels); every number printed comes from the exact
Decimal via :func:`usd_label`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from html import escape

#: colour-blind friendly categorical palette (Okabe-Ito plus extras)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#332288", "#117733", "#AA4499", "#44AA99", "#882255")
GREY = "#9a9a9a"
FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def usd_label(value: Decimal | float) -> str:
    """$1,234 / $12.34 / $0.0123: enough digits to tell small amounts apart."""
    v = Decimal(str(value)) if isinstance(value, float) else value
    a = abs(v)
    if a >= 1000:
        return f"${v:,.0f}"
    if a >= 1 or a == 0:
        return f"${v:,.2f}"
    return f"${v:,.4f}"


def count_label(value: Decimal | float | int) -> str:
    """12 / 3.4k / 1.2M / 5.6B: token counts at a glance (the tables give them exactly)."""
    v = float(value)
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v:,.0f}"


def colour_for(names: Sequence[str], unattributed: str) -> dict[str, str]:
    out, i = {}, 0
    for n in names:
        if n == unattributed:
            out[n] = GREY
        else:
            out[n] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^k) up to at least ``maximum``."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(maximum / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _tick_label(v: float, step: float) -> str:
    if step >= 1:
        return f"${v:,.0f}"
    decimals = min(6, max(2, -math.floor(math.log10(step)) + (0 if step * 10 ** -math.floor(
        math.log10(step)) in (1, 2, 5) else 1)))
    return f"${v:,.{decimals}f}"


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" style="{FONT}">',
        f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="16" '
        f'font-weight="600" fill="#222">{escape(title)}</text>',
    ]


def stacked_bars(title: str, categories: Sequence[str], series: dict[str, Sequence[Decimal]],
                 colours: dict[str, str], x_title: str, y_title: str = "USD",
                 width: int = 1000, height: int = 420, money: bool = True) -> str:
    """Vertical stacked bars: one bar per category (day/week), one colour per series (team).

    ``money`` False: the values are counts (tokens), labelled 1.2M rather than $.
    """
    value_label = usd_label if money else count_label
    left, right, top, bottom = 80, 190, 40, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum((s[i] for s in series.values()), Decimal(0)) for i in range(len(categories))]
    ticks = nice_ticks(float(max(totals, default=Decimal(0))))
    ymax = ticks[-1]
    out = _svg_open(width, height, title)
    step = ticks[1] - ticks[0]
    for t in ticks:
        y = top + plot_h - t / ymax * plot_h
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                   'stroke="#e3e3e3"/>')
        tick = _tick_label(t, step) if money else count_label(t)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                   f'fill="#444">{tick}</text>')
    n = max(len(categories), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1.0)
    label_every = max(1, math.ceil(n / 16))
    for i, cat in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        y_base = top + plot_h
        for name, values in series.items():
            v = values[i]
            if v <= 0:
                continue
            h = float(v) / ymax * plot_h
            y_base -= h
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{y_base:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colours[name]}"><title>{escape(cat)} · '
                f'{escape(name)}: {value_label(v)}</title></rect>')
        if totals[i] > 0 and n <= 16:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y_base - 4:.1f}" text-anchor="middle" '
                       f'font-size="10" fill="#222">{value_label(totals[i])}</text>')
        if i % label_every == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                       f'text-anchor="middle" font-size="11" fill="#444">{escape(cat)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
               f'y2="{top + plot_h}" stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 22}" text-anchor="middle" '
               f'font-size="12" fill="#333">{escape(x_title)}</text>')
    out.append(f'<text x="18" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="12" '
               f'fill="#333" transform="rotate(-90 18 {top + plot_h / 2:.1f})">'
               f'{escape(y_title)}</text>')
    # legend: name and the series total over the period
    lx, ly = left + plot_w + 16, top + 8
    out.append(f'<text x="{lx}" y="{ly}" font-size="12" font-weight="600" fill="#222">'
               'legend (period total)</text>')
    for j, (name, values) in enumerate(series.items()):
        y = ly + 14 + j * 18
        out.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{colours[name]}"/>')
        out.append(f'<text x="{lx + 18}" y="{y + 10}" font-size="11" fill="#222">'
                   f'{escape(name[:24])} {value_label(sum(values, Decimal(0)))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def horizontal_bars(title: str, items: Sequence[tuple[str, Decimal, str]], x_title: str,
                    colours: Sequence[str] | None = None, money: bool = True,
                    width: int = 1000, markers: Sequence[tuple[float, str]] = (),
                    row_h: int = 26, projections: Sequence[float | None] = ()) -> str:
    """One bar per item (label, value, text shown after the bar); optional vertical markers.

    ``markers`` are (value, label) lines drawn across all bars, e.g. budget
    thresholds at 50/80/100/120 %; their labels alternate between two heights
    so close lines stay legible. ``projections`` puts a hollow diamond on each
    bar at a projected value (e.g. month-end budget use).
    """
    left, right, top = 220, 260, 40 + (36 if markers else 0)
    height = top + max(len(items), 1) * row_h + 50
    plot_w = width - left - right
    vmax = max([float(v) for _, v, _ in items] + [m for m, _ in markers]
               + [p for p in projections if p is not None] + [0.0])
    ticks = nice_ticks(vmax)
    xmax = ticks[-1]
    out = _svg_open(width, height, title)
    plot_bottom = top + len(items) * row_h
    for t in ticks:
        x = left + t / xmax * plot_w
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{plot_bottom}" '
                   'stroke="#ececec"/>')
        text = _tick_label(t, ticks[1] - ticks[0]) if money else f"{t:g}"
        out.append(f'<text x="{x:.1f}" y="{plot_bottom + 14}" text-anchor="middle" '
                   f'font-size="10" fill="#555">{text}</text>')
    for i, (name, value, note) in enumerate(items):
        y = top + i * row_h
        w = max(float(value) / xmax * plot_w, 0.0)
        colour = colours[i] if colours else PALETTE[0]
        out.append(f'<text x="{left - 8}" y="{y + row_h * 0.62:.1f}" text-anchor="end" '
                   f'font-size="12" fill="#222">{escape(name[:34])}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y + 4}" width="{w:.1f}" '
                   f'height="{row_h - 8}" fill="{colour}"><title>{escape(name)}: '
                   f'{escape(note)}</title></rect>')
        p = projections[i] if i < len(projections) else None
        tx = left + max(w, (p or 0.0) / xmax * plot_w + 6 if p is not None else 0.0) + 6
        out.append(f'<text x="{tx:.1f}" y="{y + row_h * 0.62:.1f}" font-size="11" '
                   f'fill="#222">{escape(note)}</text>')
    for i, proj in enumerate(projections):
        if proj is None:
            continue
        x, y = left + proj / xmax * plot_w, top + i * row_h + row_h / 2
        out.append(f'<path class="projection" d="M{x:.1f} {y - 7:.1f} L{x + 6:.1f} {y:.1f} '
                   f'L{x:.1f} {y + 7:.1f} L{x - 6:.1f} {y:.1f} Z" fill="#fff" stroke="#222" '
                   f'stroke-width="1.5"><title>projected: {proj:.0f}</title></path>')
    for j, (value, text) in enumerate(markers):
        x = left + value / xmax * plot_w
        ty = top - 6 - (j % 3) * 12
        out.append(f'<line x1="{x:.1f}" y1="{ty + 2}" x2="{x:.1f}" y2="{plot_bottom}" '
                   'stroke="#c00" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x:.1f}" y="{ty}" text-anchor="middle" font-size="10" '
                   f'fill="#c00">{escape(text)}</text>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{plot_bottom}" stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 12}" text-anchor="middle" '
               f'font-size="12" fill="#333">{escape(x_title)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def waterfall(title: str, steps: Sequence[tuple[str, Decimal, str, str]], total_label: str,
              legend: Sequence[tuple[str, str]] = (), width: int = 1000,
              height: int = 360) -> str:
    """A run's cost step by step: each bar floats from the running total before it to the
    one after it, and a last bar shows the total, so the climb of an agent loop is visible.

    ``steps``: (label, cost, colour, tooltip) in call order. Every bar carries its step
    number, cost and running total as ``data-`` attributes (exact decimals), so what
    the picture says can be checked against the numbers.
    """
    left, right, top, bottom = 80, 20, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    running = Decimal(0)
    spans: list[tuple[Decimal, Decimal]] = []
    for _, cost, _, _ in steps:
        spans.append((running, running + cost))
        running += cost
    ticks = nice_ticks(float(running))
    ymax = ticks[-1]
    tick_step = ticks[1] - ticks[0]

    def y_of(v: Decimal | float) -> float:
        return top + plot_h - float(v) / ymax * plot_h

    out = _svg_open(width, height, title)
    for t in ticks:
        y = y_of(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                   'stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                   f'fill="#444">{_tick_label(t, tick_step)}</text>')
    n = len(steps) + 1
    slot = plot_w / n
    bar_w = max(slot * 0.75, 1.0)
    label_every = max(1, math.ceil(n / 20))
    for i, ((label, cost, colour, tip), (before, after)) in enumerate(
            zip(steps, spans, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        y1, y0 = y_of(after), y_of(before)
        h = max(y0 - y1, 1.0)  # a $0 step (unpriced) stays visible as a hairline
        out.append(f'<rect class="step" data-step="{i + 1}" data-cost="{cost}" '
                   f'data-running="{after}" x="{x:.1f}" y="{y0 - h:.1f}" width="{bar_w:.1f}" '
                   f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {escape(tip)}'
                   f'</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                       f'text-anchor="middle" font-size="10" fill="#444">{i + 1}</text>')
    x = left + len(steps) * slot + (slot - bar_w) / 2
    out.append(f'<rect class="total" data-running="{running}" x="{x:.1f}" y="{y_of(running):.1f}" '
               f'width="{bar_w:.1f}" height="{max(plot_h - (y_of(running) - top), 0.0):.1f}" '
               f'fill="#333"><title>{escape(total_label)}</title></rect>')
    out.append(f'<text x="{min(x + bar_w / 2, width - 40):.1f}" y="{y_of(running) - 6:.1f}" '
               f'text-anchor="end" font-size="11" font-weight="600" fill="#222">'
               f'{escape(total_label)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
               'stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 26}" text-anchor="middle" '
               f'font-size="12" fill="#333">step (call) in order; last bar: the run total'
               '</text>')
    out.append(f'<text x="18" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="12" '
               f'fill="#333" transform="rotate(-90 18 {top + plot_h / 2:.1f})">'
               'running total (USD)</text>')
    lx = left
    for name, colour in legend:
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 14}" y="{height - 5}" font-size="11" fill="#222">'
                   f'{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out)
