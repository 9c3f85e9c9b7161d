"""The repository speaks of the project, not of how it was built: no numbered work periods, no
tracker numbers, no absolute paths of the machines it was built on, in any tracked text file.

Result records are exempt: their provenance keeps the command exactly as it ran (paths
included), which is data, not narration."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# each pattern is assembled from pieces so that this file does not match itself
WORK_PERIOD = re.compile(r"\b[Ss]ession" + r"s?[ -]+\d+\b")
TRACKER = re.compile(r"\b(?:[Ii]ssue|PR|[Pp]ull request|[Tt]icket)s?\s*#?" + r"\d+\b"
                     r"|\((?:see\s+)?#" + r"\d+\)"
                     r"|\b(?:[Ss]ee|[Ff]ixes|[Cc]loses|[Rr]esolves)\s+#" + r"\d+\b")
MACHINE_PATH = re.compile(r"(?<![\w.~$/-])/(?:work|tmp|root|home/[a-z_][\w-]*|Users/[\w-]+)" + r"(?=/|\b)")
PATTERNS = {"a numbered work period": WORK_PERIOD, "a tracker number": TRACKER,
            "an absolute path of a machine": MACHINE_PATH}


def build_history(text: str) -> list[tuple[int, str, str]]:
    """(line number, what, the text found) for every hit in ``text``."""
    return [(number, what, found.group(0)) for number, line in enumerate(text.splitlines(), 1)
            for what, pattern in PATTERNS.items() for found in pattern.finditer(line)]


# the known-answer cases spell the words and roots with placeholders, for the same reason
WORDS = {"s": "sess" "ion", "S": "Sess" "ion", "i": "iss" "ue", "w": "/" "work", "t": "/" "tmp", "h": "/" "home",
         "r": "/" "root", "u": "/" "Users", "n": "#"}


@pytest.mark.parametrize("text, hits", [
    ("Sudoku from one commit (f95ce76, {s} 10)", ["{s} 10"]),
    ("{S} 12: every row", ["{S} 12"]),
    ("{s}s 4-5 measured", ["{s}s 4"]),
    ("The mini sweep ({i} 22): every row", ["{i} 22"]),
    ("as asked in #22.", []),  # a bare number is not taken for a tracker's (``test #3`` is an index)
    ("fixed ({n}22) and see {n}7", ["({n}22)", "see {n}7"]),
    ("OUT={w}/sweep-out/results", ["{w}"]),
    ("git clone URL {t}/trm_ref", ["{t}"]),
    ("the cache ({h}/me/.cache/hub)", ["{h}/me"]),
    ("a cache at {r}/.cache or {u}/ann/x", ["{r}", "{u}/ann"]),
    ("https://github.com/x{t}/y and .{t}/x and ~{w}/x and $TMPDIR{t}", []),
    ("color: #555; a {s} of training; {i} the command; sudoku test #3: puzzle", []),
])
def test_the_scan_finds_build_history_and_nothing_else(text, hits) -> None:
    assert [found for _, _, found in build_history(text.format(**WORDS))] == [h.format(**WORDS) for h in hits]


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing tracked to scan")
    files = []
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or b"\0" in path.read_bytes()[:8192]:  # binary files hold no prose
            continue
        if name.endswith(".json") and is_record(path):
            continue
        files.append(path)
    return files


def is_record(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "provenance" in data and "schema_version" in data


def test_no_tracked_text_file_holds_build_history() -> None:
    found = []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}:{line}: {what}: {hit!r}" for line, what, hit in build_history(text)]
    assert not found, "build history in the repository:\n" + "\n".join(found)
