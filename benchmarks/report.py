"""The table run.py prints: medians over the repeats, and each figure's ratio to the best peer
in its column (more than 1x means better than every peer measured in the same run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import harness

#: (result key, header, higher is better)
COLUMNS = [
    ("submit_one", "submit 1-by-1 (jobs/s)", True),
    ("submit_bulk", "bulk submit (jobs/s)", True),
    ("process_1", "noop, 1 process (jobs/s)", True),
    ("process_2", "noop, 2 processes (jobs/s)", True),
    ("latency_p50_ms", "pickup p50 (ms)", False),
    ("latency_p99_ms", "pickup p99 (ms)", False),
]


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    keys = {key for run in runs for key in run}
    return {key: harness.median([run.get(key) for run in runs]) for key in keys}


def best_peers(rows: dict[str, dict[str, Any]], systems: Sequence[Any]) -> dict[str, tuple]:
    """Per column: (best value, system) among the peers."""
    best: dict[str, tuple] = {}
    for key, _, higher in COLUMNS:
        found = [(rows[s.name].get(key), s) for s in systems if s.is_peer and s.name in rows]
        found = [(v, s) for v, s in found if v is not None]
        if found:
            best[key] = max(found, key=lambda p: p[0]) if higher else min(found, key=lambda p: p[0])
    return best


def _number(value: float, higher: bool) -> str:
    if higher:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def table(rows: dict[str, dict[str, Any]], systems: Sequence[Any]) -> str:
    """A Markdown table; each cell "value (ratio to the best peer)"."""
    best = best_peers(rows, systems)
    header = ["system"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system in systems:
        if system.name not in rows:
            continue
        values = rows[system.name]
        cells = [system.label]
        for key, _, higher in COLUMNS:
            value = values.get(key)
            if value is None:
                cells.append("—")
                continue
            text = _number(value, higher)
            if key in best and best[key][0] and value:
                ratio = value / best[key][0] if higher else best[key][0] / value
                text += f" ({_ratio(ratio)})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"- best peer, {title}: {best[key][1].label} ({_number(best[key][0], higher)})"
        for key, title, higher in COLUMNS
        if key in best
    ]
    return "\n".join([*lines, "", *notes])


def memory_table(rows: dict[str, dict[str, Any]], systems: Sequence[Any]) -> str:
    lines = [
        "| system | worker RSS after 10k jobs (MiB) | RSS at the end (MiB) | jobs at the end "
        "| growth |",
        "|---|---|---|---|---|",
    ]
    for system in systems:
        values = rows.get(system.name) or {}
        if values.get("rss_10k_mib") is None:
            continue
        low, high = values["rss_10k_mib"], values["rss_end_mib"]
        # Growth from the two medians shown, so that the row reads consistently.
        lines.append(
            f"| {system.label} | {low:.1f} | {high:.1f} | {values['rss_end_jobs']:,.0f} "
            f"| {(high - low) / low * 100:+.1f} % |"
        )
    return "\n".join(lines)


def settings(systems: Sequence[Any]) -> str:
    return "\n".join(f"- {s.label}: {s.setting}" for s in systems)
