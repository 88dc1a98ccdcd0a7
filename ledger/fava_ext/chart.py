"""A grouped bar chart as inline SVG: no script, no external asset.

Fava inserts extension pages into its single-page app without running their
scripts, so the chart is plain markup. One group per label, one bar per
series; negative values hang below the zero line::

    >>> svg = bar_chart(["2026-09", "2026-10"], [("recognized", [Decimal("160"), Decimal("30")])])
    >>> svg.startswith("<svg") and "2026-10" in svg and "recognized 160" in svg
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

#: Bar colours per series, in order (colour-blind safe Okabe–Ito palette).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
WIDTH, HEIGHT, MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 720, 220, 64, 28, 24


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[Decimal]]], *, unit: str = "") -> str:
    """SVG markup of ``series`` (name, one value per label) grouped by ``labels``."""
    values = [v for _name, vs in series for v in vs]
    top = max([Decimal(0), *values])
    bottom = min([Decimal(0), *values])
    span = (top - bottom) or Decimal(1)
    plot_h = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    plot_w = WIDTH - MARGIN_LEFT - 8

    def y(value: Decimal) -> float:
        return MARGIN_TOP + float((top - value) / span) * plot_h

    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="meterbook-chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(", ".join(n for n, _ in series))}">']
    zero = y(Decimal(0))
    for tick in (top, bottom) if bottom < 0 else (top,):
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{escape(f"{tick:,.2f}")}</text>')
    parts.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - 8}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#888"/>')
    for i, label in enumerate(labels):
        x0 = MARGIN_LEFT + i * group + group * 0.1
        for s, (name, vs) in enumerate(series):
            value = vs[i]
            y1, y2 = sorted((y(value), zero))
            parts.append(
                f'<rect x="{x0 + s * bar:.1f}" y="{y1:.1f}" width="{bar * 0.9:.1f}" height="{max(y2 - y1, 0.5):.1f}" '
                f'fill="{COLOURS[s % len(COLOURS)]}"><title>{escape(f"{label} {name} {value} {unit}".strip())}'
                "</title></rect>")
        parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11">'
                     f"{escape(label)}</text>")
    for s, (name, _vs) in enumerate(series):
        parts.append(f'<rect x="{MARGIN_LEFT + s * 130}" y="4" width="10" height="10" fill="{COLOURS[s % len(COLOURS)]}"/>'
                     f'<text x="{MARGIN_LEFT + s * 130 + 14}" y="13" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
