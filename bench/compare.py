"""Several runs of bench/run.py side by side: one Markdown row per figure, one column
per run (the median ratio, or the value for a memory bound), and whether the target
was met in how many of them.

    .venv/bin/python bench/compare.py A.json B.json [C.json ...]

Each column is headed by its run's time (UTC). A figure that a run does not have
(the harness gained it later) shows "-" there.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any


def _cell(row: dict[str, Any]) -> str:
    if row["limit"] is not None:
        return f"{statistics.median(row['ours']):.2f} MiB" if row["ours"] else "-"
    return f"{row['ratio']:.2f}"


def _goal(row: dict[str, Any]) -> str:
    if row["limit"] is not None:
        return f"<= {row['limit']:g} MiB"
    return "" if row["target"] is None else f">= {row['target']:g}"


def _met(rows: list[dict[str, Any]]) -> str:
    judged = [row["met"] for row in rows if row["met"] is not None]
    if not judged:
        return ""
    hits = sum(judged)
    if hits == len(judged):
        return "yes"
    return "no" if hits == 0 else f"{hits} of {len(judged)}"


def compare(runs: list[dict[str, Any]]) -> str:
    """The runs' figures as one Markdown table."""
    times = [run["machine"]["date"].split()[1] for run in runs]
    lines = [
        "| figure | baseline | " + " | ".join(f"run at {t}" for t in times) + " | target | met |",
        "|---|---|" + "---|" * len(runs) + "---|---|",
    ]
    by_run = [{(row["name"], row["baseline"]): row for row in run["figures"]} for run in runs]
    order: dict[tuple[str, str], None] = {}
    for run in reversed(runs):  # the latest run's order, then figures only older runs have
        order.update(dict.fromkeys((row["name"], row["baseline"]) for row in run["figures"]))
    for figure in order:
        rows = [found[figure] for found in by_run if figure in found]
        cells = " | ".join(_cell(found[figure]) if figure in found else "-" for found in by_run)
        first = rows[0]
        lines.append(f"| {first['name']} | {first['baseline']} | {cells} | {_goal(first)} | {_met(rows)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", nargs="+", help="JSON files written by bench/run.py --json")
    options = parser.parse_args()
    runs = []
    for path in options.results:
        with open(path) as results:
            runs.append(json.load(results))
    print(compare(runs))


if __name__ == "__main__":
    main()
