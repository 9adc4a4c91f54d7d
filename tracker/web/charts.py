"""Charts drawn on the server as inline SVG: nothing to load from anywhere (docs/figures.md#f1).

Only presentation attributes (``fill=``, ``stroke=``) are used, never ``style=``, so
the pages work under ``Content-Security-Policy: default-src 'self'``. Every text
that could come from a user goes through ``escape``. Each mark carries a
``<title>`` so hovering shows its exact value.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

COLORS = {
    "deliveries": "#4263eb",
    "opens": "#0ca678",
    "clicks": "#f76707",
    "conversions": "#7048e8",
    "bounces": "#e03131",
    "soft_bounces": "#f59f00",
    "failures": "#868e96",
    "grid": "#e9ecef",
    "axis": "#868e96",
    "muted": "#ced4da",
}
FONT = 'font-family="system-ui, sans-serif"'
MAX_POINTS = 200  # longer series are summed into buckets so bars stay visible


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _nice_max(value: float) -> float:
    """A round axis top at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 1
    while power * 10 <= value:
        power *= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def bucket(labels: Sequence[str], values: Sequence[int]) -> tuple[list[str], list[int]]:
    """At most MAX_POINTS points: consecutive days summed, labelled "first – last"."""
    if len(values) <= MAX_POINTS:
        return list(labels), list(values)
    size = -(-len(values) // MAX_POINTS)
    out_labels, out_values = [], []
    for i in range(0, len(values), size):
        chunk = labels[i:i + size]
        out_labels.append(chunk[0] if len(chunk) == 1 else f"{chunk[0]} – {chunk[-1]}")
        out_values.append(sum(values[i:i + size]))
    return out_labels, out_values


def daily(dates: Sequence[str], series: Sequence[tuple[str, str, Sequence[int | None]]],
          *, width: int = 760, row_height: int = 78, empty_text: str = "") -> Markup:
    """Small multiples sharing the date axis: one row per series (label, color key,
    values), each on its own scale so clicks are not flattened by deliveries. The
    first series is drawn as bars (sends), the others as lines (activity)."""
    left, right, top, gap = 120, 12, 8, 14
    plot_w = width - left - right
    rows = [(label, key, [v or 0 for v in values], all(v is None for v in values))
            for label, key, values in series]
    height = top + len(rows) * (row_height + gap) + 18
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" {FONT} font-size="11">']
    for index, (label, key, values, unmeasured) in enumerate(rows):
        y0 = top + index * (row_height + gap)
        names, points = bucket(dates, values)
        peak = _nice_max(max(points, default=0))
        n = max(len(points), 1)
        step = plot_w / n
        color = COLORS.get(key, COLORS["axis"])
        base = y0 + row_height
        parts.append(f'<text x="0" y="{y0 + 14}" font-weight="600" fill="#343a40">'
                     f'{escape(label)}</text>')
        total = "–" if unmeasured else _num(sum(points))
        parts.append(f'<text x="0" y="{y0 + 30}" fill="{color}" font-size="13" '
                     f'font-weight="600">{escape(total)}</text>')
        parts.append(f'<line x1="{left}" y1="{y0}" x2="{width - right}" y2="{y0}" '
                     f'stroke="{COLORS["grid"]}"/>')
        parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" '
                     f'stroke="{COLORS["axis"]}"/>')
        parts.append(f'<text x="{left - 4}" y="{y0 + 9}" text-anchor="end" '
                     f'fill="{COLORS["axis"]}">{escape(_num(peak))}</text>')
        if unmeasured:
            parts.append(f'<text x="{left + plot_w / 2}" y="{y0 + row_height / 2 + 4}" '
                         f'text-anchor="middle" fill="{COLORS["axis"]}">'
                         f'{escape(empty_text)}</text>')
            continue
        if index == 0:
            bar = max(step * 0.7, 1)
            for i, (name, value) in enumerate(zip(names, points, strict=True)):
                h = row_height * value / peak
                x = left + i * step + (step - bar) / 2
                parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                             f'height="{max(h, 0):.1f}" fill="{color}" rx="1">'
                             f'<title>{escape(name)}: {escape(_num(value))}</title></rect>')
        else:
            coords = [(left + (i + 0.5) * step, base - row_height * v / peak)
                      for i, v in enumerate(points)]
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            area = f"{coords[0][0]:.1f},{base} {line} {coords[-1][0]:.1f},{base}"
            parts.append(f'<polygon points="{area}" fill="{color}" fill-opacity="0.12"/>')
            parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                         f'stroke-width="2" stroke-linejoin="round"/>')
            radius = 2.5 if n <= 62 else 1.2
            for (x, y), name, value in zip(coords, names, points, strict=True):
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}">'
                             f'<title>{escape(name)}: {escape(_num(value))}</title></circle>')
    if dates:
        y = height - 4
        parts.append(f'<text x="{left}" y="{y}" fill="{COLORS["axis"]}">'
                     f'{escape(dates[0])}</text>')
        parts.append(f'<text x="{width - right}" y="{y}" text-anchor="end" '
                     f'fill="{COLORS["axis"]}">{escape(dates[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel(steps: Sequence[tuple[str, int | None, str, str]], *, width: int = 760) -> Markup:
    """Horizontal bars, each step (label, value, color key, text when None) as a
    share of the first (delivered users). A step whose value is None is drawn grey
    with its text: "not measurable" opens (F8), "not measured" CV (F16)."""
    label_w, bar_h, gap = 120, 26, 10
    plot_w = width - label_w - 90
    height = len(steps) * (bar_h + gap)
    first = steps[0][1] or 0 if steps else 0
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" {FONT} font-size="12">']
    for i, (label, value, key, not_measured) in enumerate(steps):
        y = i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + bar_h / 2 + 4}" fill="#343a40">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" '
                     f'fill="#f1f3f5" rx="3"/>')
        if value is None:
            parts.append(f'<text x="{label_w + 8}" y="{y + bar_h / 2 + 4}" '
                         f'fill="{COLORS["axis"]}" font-style="italic">'
                         f'{escape(not_measured)}</text>')
            continue
        share = value / first if first else 0
        w = plot_w * min(share, 1)
        color = COLORS.get(key, COLORS["axis"])
        percent = f"{share:.1%}" if first else "–"
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                     f'fill="{color}" rx="3"><title>{escape(label)}: {escape(_num(value))} '
                     f'({escape(percent)})</title></rect>')
        parts.append(f'<text x="{label_w + plot_w + 8}" y="{y + bar_h / 2 + 4}" '
                     f'fill="#343a40"><tspan font-weight="600">{escape(_num(value))}</tspan>'
                     f' <tspan fill="{COLORS["axis"]}">{escape(percent)}</tspan></text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked(parts_in: Sequence[tuple[str, int, str]], total_label: str, *,
            width: int = 760) -> Markup:
    """One bar split into its parts (delivered, bounces, soft bounces, failures),
    which add up to the whole (targets, F6); a legend gives each count and share."""
    total = sum(v for _, v, _ in parts_in)
    bar_y, bar_h = 22, 34
    legend_y = bar_y + bar_h + 22
    height = legend_y + 22 * ((len(parts_in) + 1) // 2) + 4
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'xmlns="http://www.w3.org/2000/svg" {FONT} font-size="12">',
           f'<text x="0" y="14" fill="#343a40" font-weight="600">{escape(total_label)}: '
           f'{escape(_num(total))}</text>',
           f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_h}" fill="#f1f3f5" rx="4"/>']
    x = 0.0
    for label, value, key in parts_in:
        if total and value:
            w = width * value / total
            out.append(f'<rect x="{x:.1f}" y="{bar_y}" width="{w:.1f}" height="{bar_h}" '
                       f'fill="{COLORS.get(key, COLORS["axis"])}"><title>{escape(label)}: '
                       f'{escape(_num(value))} ({value / total:.1%})</title></rect>')
            x += w
    for i, (label, value, key) in enumerate(parts_in):
        lx = (i % 2) * (width / 2)
        ly = legend_y + (i // 2) * 22
        share = f"{value / total:.1%}" if total else "–"
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" rx="2" '
                   f'fill="{COLORS.get(key, COLORS["axis"])}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}" fill="#343a40">{escape(label)} '
                   f'<tspan font-weight="600">{escape(_num(value))}</tspan> '
                   f'<tspan fill="{COLORS["axis"]}">{escape(share)}</tspan></text>')
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(values: Sequence[int], *, title: str = "", width: int = 120,
              height: int = 28, key: str = "clicks") -> Markup:
    """A tiny trend for the campaign list; the title gives the total on hover."""
    _, points = bucket([""] * len(values), list(values))
    peak = max(points, default=0) or 1
    n = len(points)
    color = COLORS.get(key, COLORS["axis"])
    out = [f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">'
           f'<title>{escape(title)}</title>']
    if n >= 2:
        coords = [(i * (width - 2) / (n - 1) + 1, height - 2 - (height - 4) * v / peak)
                  for i, v in enumerate(points)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(f'<polygon points="1,{height - 1} {line} {width - 1},{height - 1}" '
                   f'fill="{color}" fill-opacity="0.15"/>')
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                   f'stroke-width="1.5"/>')
    out.append(f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" '
               f'stroke="{COLORS["grid"]}"/></svg>')
    return Markup("".join(out))
