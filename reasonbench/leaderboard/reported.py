"""The papers' published figures (``leaderboard/reported.yaml``): shown apart from measured rows,
never ranked with them and never on a Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import printable

# the checkout's own file; an installed package without the checkout has none
DEFAULT_REPORTED = Path(__file__).resolve().parents[2] / "leaderboard" / "reported.yaml"

REQUIRED = {"model": str, "params": str, "task": str, "benchmark": str, "accuracy": (int, float),
            "source": str, "url": str}
OPTIONAL = {"note": str, "verified": bool, "oracle": bool, "test_time_compute": dict}
# what a figure's test-time compute holds: the paper's words, and where it states them, the
# reasoning depth and the trajectories (restarts, relabellings x checkpoints) per example
TEST_TIME_FIELDS = {"description": str, "depth": int, "breadth": int, "select": str}


def _check(entry: Any) -> str | None:
    """What is wrong with one entry, or None."""
    if not isinstance(entry, dict):
        return "not a mapping"
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        return f"unknown field {unknown[0]!r}"
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        return f"missing field {missing[0]!r}"
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        value = entry.get(key)
        if key in entry and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            kind_text = ("a number" if key == "accuracy" else "true or false" if kind is bool
                         else "a mapping" if kind is dict else "text")
            return f"{key} must be {kind_text}"
    if not 0 <= entry["accuracy"] <= 100:
        return "accuracy must be a percentage in [0, 100]"
    if not entry["url"].startswith("https://"):
        return "url must start with https://"
    return _check_test_time(entry.get("test_time_compute"))


def _check_test_time(compute: dict[str, Any] | None) -> str | None:
    """What is wrong with an entry's ``test_time_compute``, or None."""
    if compute is None:
        return None
    unknown = sorted(set(compute) - set(TEST_TIME_FIELDS))
    if unknown:
        return f"test_time_compute: unknown field {unknown[0]!r}"
    if "description" not in compute:
        return "test_time_compute: missing field 'description'"
    for key, kind in TEST_TIME_FIELDS.items():
        value = compute.get(key)
        if key not in compute:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return f"test_time_compute: {key} must be an integer >= 1"
        if kind is str and (not isinstance(value, str) or not value.strip()):
            return f"test_time_compute: {key} must be text"
    return None


def load_reported(path: Path) -> list[dict[str, Any]]:
    """The entries of ``path``, defaults filled in; a UserError naming the file and the entry
    when one is malformed (the file is curated in the repository: a mistake stops the build)."""
    from reasonbench.util.untrusted import MAX_YAML_BYTES, load_yaml, read_text

    data = load_yaml(read_text(path, printable(path), MAX_YAML_BYTES), str(path))
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise UserError(f"{path}: expected a mapping with a list under 'entries'")
    entries = []
    for number, entry in enumerate(data["entries"], start=1):
        problem = _check(entry)
        if problem:
            model = entry.get("model") if isinstance(entry, dict) else None
            label = f" ({printable(model, 60)})" if isinstance(model, str) else ""
            raise UserError(f"{path}: entry {number}{label}: {problem}")
        entries.append({"verified": True, "oracle": False, "note": "", **entry})
    return entries
