"""Bar charts rendered by the portal itself as SVG markup (no script, no external service)."""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass
class Chart:
    title: str
    svg: Markup
    rows: list[tuple[str, int]]


def bars(rows: list[tuple[str, int]], title: str, width: int = 560, bar_h: int = 22) -> Chart:
    rows = [(str(label), int(n)) for label, n in rows]
    top = max((n for _, n in rows), default=0) or 1
    label_w, gap = 200, 6
    height = max(1, len(rows)) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" class="chart">']
    for i, (label, n) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = int((width - label_w - 60) * n / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.72:.0f}" text-anchor="end" class="chart__label">{escape(label[:28])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" class="chart__bar"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + bar_h * 0.72:.0f}" class="chart__value">{n}</text>')
    parts.append("</svg>")
    return Chart(title, Markup("".join(parts)), rows)
