"""Bar charts rendered by the portal itself as SVG markup (no script, no external service).

Each chart is drawn twice: a wide one (labels beside the bars) and a narrow one (each label
above its bar, drawn at the width of a phone) and the stylesheet shows one of them. A single
drawing scaled down to 375 px shrank its 12 px labels to a few pixels."""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

NARROW_WIDTH = 320


@dataclass
class Chart:
    title: str
    svg: Markup
    rows: list[tuple[str, int]]


def _wide(rows: list[tuple[str, int]], title: str, width: int, bar_h: int, top: int) -> str:
    label_w, gap = 200, 6
    height = max(1, len(rows)) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" class="chart chart--wide">']
    for i, (label, n) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = int((width - label_w - 60) * n / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.72:.0f}" text-anchor="end" class="chart__label">{escape(label[:28])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" class="chart__bar"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + bar_h * 0.72:.0f}" class="chart__value">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _narrow(rows: list[tuple[str, int]], title: str, top: int) -> str:
    """Drawn at 320 units for a column about that wide, so text keeps its size."""
    width, label_h, bar_h, gap = NARROW_WIDTH, 16, 14, 10
    row_h = label_h + bar_h + gap
    height = max(1, len(rows)) * row_h + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" class="chart chart--narrow">']
    for i, (label, n) in enumerate(rows):
        y = gap + i * row_h
        w = int((width - 48) * n / top)
        parts.append(f'<text x="0" y="{y + 12}" class="chart__label">{escape(label[:26])}</text>')
        parts.append(f'<rect x="0" y="{y + label_h}" width="{max(w, 1)}" height="{bar_h}" class="chart__bar"/>')
        parts.append(f'<text x="{w + 6}" y="{y + label_h + 12}" class="chart__value">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: list[tuple[str, int]], title: str, width: int = 560, bar_h: int = 22) -> Chart:
    rows = [(str(label), int(n)) for label, n in rows]
    top = max((n for _, n in rows), default=0) or 1
    return Chart(title, Markup(_wide(rows, title, width, bar_h, top) + _narrow(rows, title, top)), rows)
