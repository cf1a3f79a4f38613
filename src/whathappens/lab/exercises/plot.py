"""Small SVG charts for the lab's experiments: grouped or stacked bars, and lines.

Written here rather than taken from a plotting library: the experiments need three kinds of
panel, and a few hundred lines of SVG keep the project free of a heavy dependency. A figure
is a title, a line or two saying what was measured and how, and panels side by side; every
panel has labelled axes with units, a legend, and the numbers written on the bars, so the
picture can be read without the table next to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
PANEL_W, PANEL_H = 420, 360
# Inside a panel: room for the panel title and legend rows above, tick labels and the axis
# label on the left, group names and the axis label below.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 64, 58
LEGEND_ROW = 18
# Percentiles are shades of one hue, light to dark, so they never look like the settings.
PERCENTILE_COLORS = {"p50": "#9ecae1", "p95": "#4292c6", "max": "#08306b"}


@dataclass
class Series:
    name: str
    values: list[float | None]          # one per group (bars) ...
    points: list[tuple[float, float]] = field(default_factory=list)   # ... or (x, y) (lines)
    color: str = ""


@dataclass
class BarPanel:
    title: str
    y_label: str                        # with its unit: "latency (ms)"
    groups: list[str]                   # one cluster (or stack) of bars each
    series: list[Series]
    stacked: bool = False
    fmt: str = "{:.1f}"                 # how the numbers on the bars are written
    y_max: float | None = None          # e.g. 100 for shares in %
    width: int = PANEL_W


@dataclass
class LinePanel:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    log_x: bool = False
    y_max: float | None = None
    step: bool = True                   # a staircase (a CDF), not straight segments
    width: int = PANEL_W


Panel = BarPanel | LinePanel


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 … a round number ≥ ``top``, in steps of 1, 2 or 5 × 10^k."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (lo > 0)."""
    first = math.floor(math.log10(lo))
    last = math.ceil(math.log10(hi))
    if last == first:
        last += 1
    return [10.0 ** k for k in range(first, last + 1)]


def number(value: float) -> str:
    """A tick label: no trailing zeros, thousands grouped."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


class _Svg:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, words: str, *, size: int = 12, anchor: str = "start",
             weight: str = "normal", color: str = "#222", rotate: bool = False) -> None:
        turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{color}"{turn}>{escape(words)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, color: str = "#222",
             width: float = 1, dash: str = "") -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{dashed}/>')

    def rect(self, x: float, y: float, w: float, h: float, color: str, title: str = "") -> None:
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
                 f'height="{max(h, 0):.1f}" fill="{color}">{tip}</rect>')

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
                f'font-family="{FONT}">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def _colors(series: list[Series]) -> list[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _legend_rows(names: list[str], room: float) -> list[list[int]]:
    """Which legend entries go on which row, so none runs past the panel's edge."""
    rows: list[list[int]] = [[]]
    x = 0.0
    for i, name in enumerate(names):
        w = 30 + 6.8 * len(name)     # swatch, gap and the text at 11 px (an estimate)
        if rows[-1] and x + w > room:
            rows.append([])
            x = 0.0
        rows[-1].append(i)
        x += w
    return rows


def _legend(svg: _Svg, x0: float, y: float, names: list[str], colors: list[str],
            room: float, line: bool = False) -> None:
    for r, row in enumerate(_legend_rows(names, room)):
        x = x0
        for i in row:
            yy = y + LEGEND_ROW * r
            if line:
                svg.line(x, yy - 4, x + 16, yy - 4, color=colors[i], width=2.5)
            else:
                svg.rect(x, yy - 10, 12, 12, colors[i])
            svg.text(x + 20, yy, names[i], size=11)
            x += 30 + 6.8 * len(names[i])


def _frame(svg: _Svg, x0: float, y0: float, panel: Panel, line: bool = False) -> tuple[
        float, float, float, float]:
    """Panel title, legend and y-axis label; returns the plot area (left, top, width,
    height), shorter when the legend needs more than one row."""
    svg.text(x0 + panel.width / 2, y0 + 18, panel.title, size=13, anchor="middle",
             weight="bold")
    names = [s.name for s in panel.series]
    room = panel.width - LEFT - RIGHT
    extra = LEGEND_ROW * (len(_legend_rows(names, room)) - 1)
    _legend(svg, x0 + LEFT, y0 + 40, names, _colors(panel.series), room, line=line)
    left, top = x0 + LEFT, y0 + TOP + extra
    width, height = room, PANEL_H - TOP - BOTTOM - extra
    svg.text(x0 + 14, top + height / 2, panel.y_label, size=11, anchor="middle",
             rotate=True)
    return left, top, width, height


def _y_axis(svg: _Svg, left: float, top: float, width: float, height: float,
            ticks: list[float], suffix: str = "") -> None:
    for t in ticks:
        y = top + height - height * t / ticks[-1]
        svg.line(left, y, left + width, y, color="#e4e4e4")
        svg.text(left - 6, y + 4, number(t) + suffix, size=10, anchor="end", color="#444")
    svg.line(left, top, left, top + height)
    svg.line(left, top + height, left + width, top + height)


def _bars(svg: _Svg, x0: float, y0: float, panel: BarPanel) -> None:
    left, top, width, height = _frame(svg, x0, y0, panel)
    colors = _colors(panel.series)
    per_group = [[v or 0.0 for v in (s.values[g] for s in panel.series)]
                 for g in range(len(panel.groups))]
    highest = max((sum(vals) if panel.stacked else max(vals, default=0.0))
                  for vals in per_group) if per_group else 0.0
    ticks = nice_ticks(panel.y_max or highest * 1.08)
    _y_axis(svg, left, top, width, height, ticks)
    scale = height / ticks[-1]
    slot = width / max(len(panel.groups), 1)
    bars = 1 if panel.stacked else len(panel.series)
    bar_w = min(56.0, slot * 0.76 / bars)
    for g, group in enumerate(panel.groups):
        centre = left + slot * (g + 0.5)
        tip = group.replace("\n", " ")
        for k, part in enumerate(group.split("\n")):   # "\n": a label on two lines
            svg.text(centre, top + height + 18 + 13 * k, part, size=11, anchor="middle")
        base = top + height
        for i, (s, color) in enumerate(zip(panel.series, colors, strict=True)):
            value = s.values[g]
            if value is None:
                continue
            h = value * scale
            label = panel.fmt.format(value)
            if panel.stacked:
                x = centre - bar_w / 2
                svg.rect(x, base - h, bar_w, h, color, f"{tip} · {s.name}: {label}")
                if h >= 14:   # a number only where it fits inside its segment
                    svg.text(centre, base - h / 2 + 4, label, size=10, anchor="middle",
                             color="white", weight="bold")
                base -= h
            else:
                x = centre - bar_w * bars / 2 + bar_w * i
                svg.rect(x + 1, base - h, bar_w - 2, h, color, f"{tip} · {s.name}: {label}")
                svg.text(x + bar_w / 2, base - h - 4, label, size=9, anchor="middle",
                         color="#333")


def _scale_x(value: float, lo: float, hi: float, log: bool) -> float:
    """Where ``value`` sits between lo and hi, 0…1."""
    if log:
        value = max(value, lo)
        return (math.log10(value) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    return (value - lo) / (hi - lo)


def _lines(svg: _Svg, x0: float, y0: float, panel: LinePanel) -> None:
    left, top, width, height = _frame(svg, x0, y0, panel, line=True)
    colors = _colors(panel.series)
    xs = [x for s in panel.series for x, _ in s.points]
    ys = [y for s in panel.series for _, y in s.points]
    y_ticks = nice_ticks(panel.y_max or (max(ys, default=1.0) * 1.05))
    _y_axis(svg, left, top, width, height, y_ticks)
    if panel.log_x:
        x_ticks = log_ticks(max(min((x for x in xs if x > 0), default=0.1), 1e-3),
                            max(xs, default=1.0))
    else:
        x_ticks = nice_ticks(max(xs, default=1.0))
    lo, hi = x_ticks[0], x_ticks[-1]
    for t in x_ticks:
        x = left + width * _scale_x(t, lo, hi, panel.log_x)
        svg.line(x, top, x, top + height, color="#eeeeee")
        svg.line(x, top + height, x, top + height + 4)
        svg.text(x, top + height + 16, number(t), size=10, anchor="middle", color="#444")
    svg.text(left + width / 2, top + height + 38, panel.x_label, size=11, anchor="middle")
    for s, color in zip(panel.series, colors, strict=True):
        if not s.points:
            continue
        coords: list[tuple[float, float]] = []
        for x, y in s.points:
            px = left + width * _scale_x(x, lo, hi, panel.log_x)
            py = top + height - height * y / y_ticks[-1]
            if panel.step and coords:
                coords.append((px, coords[-1][1]))
            coords.append((px, py))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        svg.add(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" '
                f'stroke-linejoin="round"><title>{escape(s.name)}</title></polyline>')


def _wrap(words: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in words.split("\n"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    return lines


def figure(title: str, subtitle: str, panels: list[Panel]) -> str:
    """The SVG document: the title, the subtitle (wrapped), then the panels in a row."""
    width = sum(p.width for p in panels) + 20
    lines = _wrap(subtitle, max(60, width // 7))
    head = 38 + 16 * len(lines) + 8
    svg = _Svg(width, head + PANEL_H)
    svg.text(14, 26, title, size=17, weight="bold")
    for i, line in enumerate(lines):
        svg.text(14, 48 + 16 * i, line, size=12, color="#555")
    x0 = 10
    for panel in panels:
        if isinstance(panel, BarPanel):
            _bars(svg, x0, head, panel)
        else:
            _lines(svg, x0, head, panel)
        x0 += panel.width
    return svg.render()


def cdf(values: list[float], points: int = 200) -> list[tuple[float, float]]:
    """The empirical distribution of ``values``: (value, % of values ≤ it), thinned."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return []
    stride = max(1, n // points)
    picked = list(range(0, n, stride))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return [(ordered[i], 100.0 * (i + 1) / n) for i in picked]


def write(path: Path, svg: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path
