"""Charts of bench/results.json for docs/performance.md: one bar chart per group of
figures, ours beside its baseline (medians, with the min-max of the runs); with
--table, the page's table of every figure instead.

    .venv/bin/python bench/charts.py [--json bench/results.json] [--out docs/img] [--table]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

GROUPS = {
    "localfs": "localfs ",
    "serve": "through serve",
    "s3": "S3 ",
    "async": "async: ",
}


def _rows(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with open(path) as f:
        doc = json.load(f)
    return doc, [row for row in doc["figures"] if row["limit"] is None and row["ours"] and row["theirs"]]


def _short(text: str, most: int = 58) -> str:
    """A figure's name up to its first explanation, at most `most` characters."""
    text = text.split(": ", maxsplit=1)[0].split(" (", maxsplit=1)[0]
    return text if len(text) <= most else text[: most - 1] + "…"


def _chart(rows: list[dict[str, Any]], title: str, path: str) -> None:
    """Ours and the baseline per figure, each relative to the baseline's median (1.0)."""
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 1.4))
    names = [f"{_short(row['name'])}\nvs {_short(row['baseline'])}" for row in rows]
    ratios = [row["ratio"] for row in rows]
    spans = [(row["ratio"] - min(row["ratios"]), max(row["ratios"]) - row["ratio"]) for row in rows]
    positions = range(len(rows))
    ax.barh(positions, ratios, xerr=list(zip(*spans, strict=True)), color="#3b7dd8", label="ours")
    ax.axvline(1.0, color="#444", linestyle="--", linewidth=1, label="baseline (1.0)")
    ax.set_yticks(list(positions), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio to the baseline, median of the runs (above 1.0: better)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _value(value: float, unit: str) -> str:
    digits = 0 if value >= 100 else (1 if value >= 10 else 2)
    number = f"{value:,.{digits}f}"
    return f"{number} {unit}"


def markdown_table(figures: list[dict[str, Any]]) -> str:
    """Every figure as a row: ours and the baseline's medians, the ratio and its range."""
    lines = [
        "| figure | baseline | ours | baseline's | ratio (min-max) | target |",
        "|---|---|---|---|---|---|",
    ]
    for row in figures:
        ours = _value(statistics.median(row["ours"]), row["unit"])
        theirs = _value(statistics.median(row["theirs"]), row["unit"])
        if row["limit"] is not None:
            ratio, target = "-", f"<= {row['limit']:g} {row['unit']}"
        else:
            ratio = f"{row['ratio']:.2f} ({min(row['ratios']):.2f}-{max(row['ratios']):.2f})"
            target = "" if row["target"] is None else f">= {row['target']:g}"
        lines.append(f"| {row['name']} | {row['baseline']} | {ours} | {theirs} | {ratio} | {target} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", default="bench/results.json")
    parser.add_argument("--out", default="docs/img")
    parser.add_argument("--table", action="store_true", help="print the Markdown table instead")
    options = parser.parse_args()
    doc, rows = _rows(options.json)
    if options.table:
        print(markdown_table(doc["figures"]))
        return
    os.makedirs(options.out, exist_ok=True)
    when = doc["machine"].get("date", "")
    for group, marker in GROUPS.items():
        chosen = [row for row in rows if marker in row["name"]]
        if not chosen:
            continue
        path = os.path.join(options.out, f"bench-{group}.png")
        _chart(chosen, f"{group}: ours against each baseline, {when}", path)
        middle = statistics.median(row["ratio"] for row in chosen)
        print(f"{path}: {len(chosen)} figures, median ratio {middle:.2f}")


if __name__ == "__main__":
    main()
