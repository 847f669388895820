"""Trend charts: one figure of a drill over its runs, as inline SVG (pure: a Series in, markup out).

At most COLUMNS columns whatever the number of runs: past that, runs share a column, drawn as the range of
their values with a line through each column's median, so 10,000 runs cost the same markup as 480. A column
holding a run that did not pass is marked under the axis: a regression shows where it started.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from html import escape

from orchestrator.history.model import Series, median, present
from orchestrator.reporting.formats import figure

COLUMNS = 480
WIDTH, HEIGHT = 960, 170
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@lru_cache(maxsize=8)
def _columns(count: int) -> tuple[tuple[int, int, str], ...]:
    """Each column's runs (indexes: start and end, oldest first) and its x, as the SVG has it: the same for
    every chart of a page, so worked out once."""
    if count <= COLUMNS:
        bounds = [(i, i + 1) for i in range(count)]
    else:
        bounds = [(c * count // COLUMNS, (c + 1) * count // COLUMNS) for c in range(COLUMNS)]
    step = PLOT_W / max(len(bounds), 1)
    return tuple((start, end, f"{LEFT + (c + 0.5) * step:.1f}") for c, (start, end) in enumerate(bounds))


def trend_chart(series: Series, verdicts: Sequence[str], started: Sequence[datetime]) -> str:
    """The SVG of one figure; `verdicts` and `started` are the DrillSeries' columns it belongs to. Per column
    only slices, counts and one sort (10,000 runs a chart, several charts a page)."""
    values = series.values
    top = series.high or 1.0
    scale = PLOT_H / top

    def y(v: float) -> float:
        return TOP + PLOT_H - v * scale

    ranges, line, failed = [], [], []
    for start, end, x in _columns(len(values)):
        if verdicts[start:end].count("PASS") < end - start:
            failed.append(f"M{x},{TOP + PLOT_H + 4}v6")
        seen = sorted(present(values[start:end]))
        if not seen:
            continue
        if seen[-1] > seen[0]:
            ranges.append(f"M{x},{y(seen[-1]):.1f}V{y(seen[0]):.1f}")
        line.append(f"{x},{y(median(seen)):.1f}")
    unit = series.unit
    ticks = "".join(
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
        f'<text class="tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(figure(v, unit))}</text>'
        for v in (0.0, top / 2, top)
    )
    dates = ""
    if started:
        first, last = (t.strftime("%Y-%m-%d %H:%M") for t in (started[0], started[-1]))
        base = TOP + PLOT_H + 26
        dates = (
            f'<text class="tick" x="{LEFT}" y="{base}">{escape(first)}</text>'
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{base}" text-anchor="end">{escape(last)}</text>'
        )
    title = f"{series.subject} {series.metric}: {len(series.measured)} of {len(values)} runs measured"
    parts = [
        f'<svg class="chart trend" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        ticks,
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H}"/>',
        f'<path class="range" d="{"".join(ranges)}"/>' if ranges else "",
        f'<polyline class="median" points="{" ".join(line)}"/>' if line else "",
        f'<path class="fail" d="{"".join(failed)}"/>' if failed else "",
        dates,
        "</svg>",
    ]
    return "".join(parts)


TREND_STYLE = """
svg.trend .median { stroke: var(--ok); stroke-width: 1.5; fill: none; }
svg.trend .range { stroke: var(--ok); stroke-width: 1; opacity: .35; fill: none; }
"""
