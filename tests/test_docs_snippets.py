"""Every Python and bash block of the README and the docs runs as pasted, top to
bottom, in a fresh folder, twice in a row (a second run meets what the first left).

A block fenced as ``sh`` or ``yaml`` is shown, not run (the set-up commands, which
CI runs itself). A block right after ``<!-- not run: reason -->`` is skipped with
that reason (it needs a service the tests do not start there). Bash blocks run
with the virtualenv's ``bin`` first on the PATH, as after ``. .venv/bin/activate``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>python|bash)\n(?P<code>.*?)\n```", re.DOTALL)
_NOT_RUN = re.compile(r"<!-- not run: (.+) -->")


def blocks(page: Path) -> list[tuple[str, str]]:
    """The (language, code) of the blocks of `page` that run, in order."""
    found = []
    for match in _FENCE.finditer("\n" + page.read_text()):
        if _NOT_RUN.search(match["before"]) or "--8<--" in match["code"]:
            continue
        found.append((match["lang"], match["code"]))
    return found


def _run(lang: str, code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("STORAGE_BACKEND", None)
    command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_every_snippet_runs_as_pasted_twice(page: Path, tmp_path: Path) -> None:
    if any(lang == "bash" for lang, _ in blocks(page)) and shutil.which("curl") is None:
        pytest.skip("the page's shell snippets use curl")
    for round_ in (1, 2):
        for number, (lang, code) in enumerate(blocks(page), 1):
            result = _run(lang, code, tmp_path)
            assert result.returncode == 0, (
                f"{page.name}, block {number} ({lang}), round {round_}:\n{code}\n--- stdout\n"
                f"{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-2000:]}"
            )


def test_the_readme_is_a_guide_of_at_most_300_lines() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for word in ("session", "Session", " I ", "we ", "We "):
        assert word not in text, word
