"""The timeline picture of a simulation report: who served the traffic, what each
provider's breaker did, and when the faults and restarts happened.

matplotlib is an optional extra (``ciris-actors[plot]``) imported only while drawing, so
importing this module never needs it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._types import Priority
from .report import BreakerChange, ProviderStats, Report

__all__ = ["FORMATS", "picture_format", "write_timeline"]

#: Shades per priority group, darkest first: blues for group 0, purples for group 1,
#: browns for group 2, teals after that. Kept clear of the breaker colours below.
_GROUP_SHADES = (
    ("#1f4e9c", "#4f8fd6", "#9cc3ee", "#c9ddf5"),
    ("#4b2c83", "#7b58b8", "#a88bd8", "#d2c3ee"),
    ("#7a4a1e", "#a8723f", "#d0a36f", "#ead0ae"),
    ("#125e5e", "#2b8c8c", "#6fbcbc", "#b4dede"),
)
_UNSERVED = "#c4c4c4"
_BREAKER = {"closed": "#79c07d", "half_open": "#f2b134", "open": "#d9483b"}
_BREAKER_LABEL = {"closed": "closed", "half_open": "half-open", "open": "open"}
_FAULT = "#3a3a3a"
_UNHEALTHY = "#5b2a86"


#: The picture formats :func:`write_timeline` writes, by file extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def picture_format(path: str | os.PathLike[str]) -> str:
    """The format a timeline written to *path* gets, from its extension.

    Raises:
      ValueError: the extension is not one of :data:`FORMATS`.
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(
            f"{os.fspath(path)}: cannot tell the picture format from"
            f" {suffix or 'a missing extension'!r}; name it .png, .svg or .pdf"
        ) from None


def write_timeline(report: Report, path: str | os.PathLike[str]) -> None:
    """Draw the timeline of *report* and save it at *path*, as a PNG, SVG or PDF by the
    path's extension.

    A lane at the top has a bar per fault, labelled, on as many rows as overlapping faults
    need. The middle panel stacks each provider's share of the requests over time, with
    the requests that failed, were rejected or were shed as a hatched grey layer. The
    lower panel has one band per provider: its breaker state (closed green, half-open
    amber, open red), dotted where its health checks were failing, and, cross-hatched,
    the windows in which its actor was down (restarting, or FAILED for good). Dashed
    lines carry each fault's start and end down through both panels, and a dark bar under
    a provider's band marks the faults that struck it.

    Args:
      report: a report from :func:`~ciris_actors.simulation.run_scenario`.
      path: where to write the PNG.

    Raises:
      ImportError: matplotlib is not installed (``pip install 'ciris-actors[plot]'``).
      OSError: *path* cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = float(report.duration)
    # Minutes read better than thousands of seconds; short runs stay in seconds.
    unit, scale = ("min", 60.0) if duration >= 600 else ("s", 1.0)
    names = _routing_order(report.providers)
    colors = _provider_colors(report, names)

    lanes = _fault_lanes(report, duration)
    rows = max((row for row, _ in lanes.values()), default=-1) + 1
    fig = plt.figure(figsize=(12, 7 + 0.22 * rows), dpi=110)
    grid = fig.add_gridspec(
        3,
        1,
        height_ratios=[max(0.25, 0.3 * rows), 3.0, max(1.4, 0.42 * len(names))],
        hspace=0.12,
        left=0.075,
        right=0.80,
        top=0.86,
        bottom=0.09,
    )
    fault_ax = fig.add_subplot(grid[0])
    share_ax = fig.add_subplot(grid[1], sharex=fault_ax)
    state_ax = fig.add_subplot(grid[2], sharex=fault_ax)

    _draw_shares(share_ax, report, names, colors, scale)
    _draw_states(state_ax, report, names, colors, duration, scale)
    _draw_faults(fault_ax, share_ax, state_ax, report, names, lanes, rows, duration, scale)

    share_ax.set_xlim(0, duration / scale)
    fault_ax.tick_params(labelbottom=False)
    share_ax.tick_params(labelbottom=False)
    state_ax.set_xlabel(f"simulated time ({unit})")
    fig.suptitle(_title(report), x=0.075, y=0.975, ha="left", fontsize=13, fontweight="bold")
    fig.text(0.075, 0.94, _subtitle(report), ha="left", va="top", fontsize=9.5, color="#444444")
    fig.savefig(path, format=picture_format(path), dpi=110, facecolor="white")
    plt.close(fig)


def _routing_order(providers: Sequence[ProviderStats]) -> list[str]:
    """Provider names in the order routing tries them (group, then priority, then the
    scenario's order)."""

    def rank(item: tuple[int, ProviderStats]) -> tuple[int, int, int]:
        index, info = item
        priority = Priority.__members__.get(info.priority, Priority.NORMAL)
        return info.group, int(priority), index

    return [info.name for _, info in sorted(enumerate(providers), key=rank)]


def _provider_colors(report: Report, names: Sequence[str]) -> dict[str, str]:
    seen: dict[int, int] = {}
    colors = {}
    for name in names:
        group = report.provider(name).group
        shades = _GROUP_SHADES[group % len(_GROUP_SHADES)]
        index = seen.get(group, 0)
        seen[group] = index + 1
        colors[name] = shades[index % len(shades)]
    return colors


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _span(seconds: float) -> str:
    if seconds < 120 or seconds % 60:
        return f"{seconds:g} s"
    hours, minutes = divmod(int(seconds // 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _title(report: Report) -> str:
    return (
        f"{report.scenario}: {_pct(report.availability)} of requests served"
        f"  (best possible {_pct(report.oracle_availability)})"
    )


def _subtitle(report: Report) -> str:
    requests = report.requests
    span = _span(float(report.duration))
    broken = report.invariants.violation_count
    rules = "every routing rule held" if not broken else f"{broken:,} routing rules broken"
    return (
        f"seed {report.seed}, {span} of virtual time, each request through"
        f" registry.{report.mode}; {rules}\n{requests.sent:,} requests:"
        f" {requests.succeeded:,} served, {requests.unserved:,} not (failed, found no"
        " provider, or dropped at the concurrency limit)"
    )


def _draw_shares(
    ax: Any,
    report: Report,
    names: Sequence[str],
    colors: Mapping[str, str],
    scale: float,
) -> None:
    from matplotlib.ticker import PercentFormatter

    timeline = report.timeline
    buckets = timeline.buckets
    width = float(timeline.bucket_seconds)
    edges = [b.start / scale for b in buckets] + [(buckets[-1].start + width) / scale]
    totals = [b.total for b in buckets]

    def share(counts: Sequence[int]) -> list[float]:
        values = [100.0 * c / t if t else 0.0 for c, t in zip(counts, totals, strict=True)]
        return [*values, values[-1]]  # step="post" needs the last value twice

    base = [0.0] * len(edges)
    for name in names:
        info = report.provider(name)
        if not info.served:
            continue
        top = [b + s for b, s in zip(base, share(timeline.served(name)), strict=True)]
        ax.fill_between(
            edges,
            base,
            top,
            step="post",
            facecolor=colors[name],
            edgecolor="white",
            linewidth=0.4,
            label=f"{name}  {info.share * 100:.1f}%",
        )
        base = top
    unserved = [b.unserved for b in buckets]
    sent = report.requests.sent
    top = [b + s for b, s in zip(base, share(unserved), strict=True)]
    ax.fill_between(
        edges,
        base,
        top,
        step="post",
        facecolor=_UNSERVED,
        edgecolor="#6e6e6e",
        hatch="////",
        linewidth=0.0,
        label=f"not served  {100 * sum(unserved) / sent if sent else 0:.2f}%",
    )
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel(f"share of requests\n(per {width:g} s)")
    ax.grid(axis="y", color="white", linewidth=0.6, alpha=0.6)
    ax.set_axisbelow(False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        title="served by (share of run)",
        title_fontproperties={"weight": "bold", "size": 9},
        fontsize=9,
        alignment="left",
    )


def _breaker_intervals(
    transitions: Sequence[BreakerChange], name: str, duration: float
) -> list[tuple[float, float, str]]:
    """The (start, end, state) runs of *name*'s breaker; every breaker starts closed."""
    runs = []
    state, since = "closed", 0.0
    for event in transitions:
        if event.provider != name:
            continue
        t = min(float(event.time), duration)
        if t > since:
            runs.append((since, t, state))
        state, since = event.new.value, t
    if since < duration:
        runs.append((since, duration, state))
    return runs


def _draw_states(
    ax: Any,
    report: Report,
    names: Sequence[str],
    colors: Mapping[str, str],
    duration: float,
    scale: float,
) -> None:
    from matplotlib.patches import Patch

    # A few seconds of half-open in an hour-long run is narrower than a pixel; give
    # every non-closed run a visible minimum width so it cannot disappear.
    minimum = duration * 0.002
    failed = {f.provider: float(f.time) for f in report.actor_failures}
    for row, name in enumerate(names):
        y = len(names) - 1 - row
        for start, end, state in _breaker_intervals(report.breaker_transitions, name, duration):
            if state != "closed":
                end = max(end, min(duration, start + minimum))
            ax.broken_barh(
                [(start / scale, (end - start) / scale)],
                (y - 0.3, 0.6),
                facecolors=_BREAKER.get(state, "#999999"),
                edgecolor="none",
            )
        for window in report.unhealthy_windows_of(name):
            start = float(window.start)
            end = max(min(float(window.end), duration), min(duration, start + minimum))
            ax.broken_barh(
                [(start / scale, (end - start) / scale)],
                (y - 0.3, 0.6),
                facecolors="none",
                edgecolor=_UNHEALTHY,
                hatch="....",
                linewidth=0.0,
            )
        for window in report.down_windows_of(name):
            start = float(window.start)
            end = duration if math.isinf(window.end) else float(window.end)
            end = max(min(end, duration), min(duration, start + minimum))
            ax.broken_barh(
                [(start / scale, (end - start) / scale)],
                (y - 0.3, 0.6),
                facecolors="white",
                edgecolor="#333333",
                hatch="xxxx",
                linewidth=0.6,
            )
        if name in failed:
            ax.annotate(
                "FAILED",
                (failed[name] / scale, y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                fontweight="bold",
                color="#8b1a12",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
            )
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(list(reversed(names)), fontsize=9)
    for label in ax.get_yticklabels():
        label.set_color(colors[label.get_text()])
        label.set_fontweight("bold")
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [
        Patch(facecolor=_BREAKER[state], label=f"breaker {_BREAKER_LABEL[state]}")
        for state in ("closed", "half_open", "open")
    ]
    handles.append(
        Patch(facecolor="#7cbf7c", edgecolor=_UNHEALTHY, hatch="....", label="health failing")
    )
    handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="xxxx", label="actor down"))
    handles.append(
        Patch(
            facecolor=_FAULT,
            edgecolor=_FAULT,
            label="fault (its bar above;\nalso under the provider\nit struck)",
        )
    )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
    )


def _fault_lanes(report: Report, duration: float) -> dict[int, tuple[int, bool]]:
    """For each fault that starts within the run, its row in the fault lane and whether
    its label goes before its bar (at the right edge) rather than after it: rows are
    assigned so that no bar or label overlaps another."""
    char = duration * 0.0075  # roughly one character of 8-point text, in seconds
    ends: list[float] = []
    lanes: dict[int, tuple[int, bool]] = {}
    for fault in sorted(report.faults, key=lambda f: (f.at, f.index)):
        start = float(fault.at)
        if start >= duration:
            continue
        end = min(duration, start + float(fault.duration))
        width = (len(_fault_label(fault)) + 2) * char
        before = end + width > duration  # no room after the bar: put the label before it
        left = start - width if before else start
        right = end if before else end + width
        row = next((i for i, e in enumerate(ends) if e <= left), len(ends))
        if row == len(ends):
            ends.append(right)
        else:
            ends[row] = right
        lanes[fault.index] = (row, before)
    return lanes


def _fault_label(fault: Any) -> str:
    return f"#{fault.index} {fault.kind.value.replace('_', ' ')}: {fault.provider}"


def _draw_faults(
    fault_ax: Any,
    share_ax: Any,
    state_ax: Any,
    report: Report,
    names: Sequence[str],
    lanes: Mapping[int, tuple[int, bool]],
    rows: int,
    duration: float,
    scale: float,
) -> None:
    for side in ("top", "right", "left", "bottom"):
        fault_ax.spines[side].set_visible(False)
    fault_ax.set_yticks([])
    fault_ax.tick_params(axis="x", length=0)
    fault_ax.set_ylim(rows - 0.5, -0.5)
    fault_ax.set_ylabel("faults", rotation=0, ha="right", va="center", fontsize=9)
    for fault in report.faults:
        if fault.index not in lanes:
            continue
        row, before = lanes[fault.index]
        start = float(fault.at)
        end = min(duration, start + float(fault.duration))
        fault_ax.broken_barh(
            [(start / scale, max(end - start, duration * 0.002) / scale)],
            (row - 0.28, 0.56),
            facecolors=_FAULT,
            edgecolor="none",
        )
        fault_ax.annotate(
            _fault_label(fault),
            ((start if before else end) / scale, row),
            xytext=(-4 if before else 4, 0),
            textcoords="offset points",
            ha="right" if before else "left",
            va="center",
            fontsize=8,
            color="#222222",
            annotation_clip=False,
        )
        # Dashed lines carry the window down through the panels; no fill on the traffic
        # panel, where a tint or hatching would read as a provider or as failed requests.
        for ax in (share_ax, state_ax):
            for x in (start, end):
                ax.axvline(x / scale, color=_FAULT, linestyle="--", linewidth=0.8, zorder=3)
        state_ax.axvspan(
            start / scale, end / scale, facecolor=_FAULT, alpha=0.08, edgecolor="none", zorder=0
        )
        y = len(names) - 1 - names.index(fault.provider)
        state_ax.plot(
            [start / scale, end / scale],
            [y - 0.42, y - 0.42],
            color=_FAULT,
            linewidth=2.2,
            solid_capstyle="butt",
            zorder=4,
        )
