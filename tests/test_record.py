import json
import re
import os
from pathlib import Path

import pytest

from reasonbench.record import schema as rec
from reasonbench.util.errors import UserError


def minimal_record() -> dict:
    return {
        "schema_version": 1, "model": "transformer", "task": "sudoku", "preset": "smoke", "seed": 0,
        "mode": "train", "status": "completed", "status_detail": None,
        "metrics": {"exact_accuracy": 0.5, "exact_accuracy_ci95": [0.2366, 0.7634], "exact_correct": 5,
                    "token_accuracy": 0.9, "n_test_examples": 10, "mean_steps": None},
        "cost": {"params": 10, "params_extra": 0, "flops_per_example_forward": {"mean": 1.0, "p95": 1.0, "examples": 1},
                 "train_flops": 3.0, "train_seconds": 1.0, "eval_seconds": 0.5, "device": "cpu", "device_count": 1,
                 "device_hours": 0.0004, "peak_memory_bytes": 1},
        "provenance": {"git_commit": None, "git_dirty": None,
                       "versions": {"python": "3.11", "torch": "2.13", "lightning": "2.6", "reasonbench": "0.1.0"},
                       "command": "reasonbench run", "config": {}, "data_fingerprint": "0" * 64,
                       "started": "2026-11-23T00:00:00+00:00", "finished": "2026-11-23T00:00:01+00:00"},
    }


def test_valid_record_passes_and_round_trips(tmp_path):
    path = rec.write_record(minimal_record(), tmp_path / "a" / "seed0.json")
    assert rec.read_record(path) == minimal_record()


@pytest.mark.parametrize("mutate, where", [
    (lambda r: r.pop("seed"), "(top level)"),
    (lambda r: r["metrics"].update(exact_accuracy=1.5), "metrics"),
    (lambda r: r["metrics"].update(exact_accuracy_ci95=[0.1]), "metrics"),
    (lambda r: r["cost"].pop("params"), "cost"),
    (lambda r: r["provenance"].update(data_fingerprint="abc"), "provenance/data_fingerprint"),
    (lambda r: r["provenance"].update(test_data_fingerprint="ABC"), "provenance/test_data_fingerprint"),
    (lambda r: r.update(status="great"), "status"),
    (lambda r: r.update(schema_version=2), "schema_version"),
])
def test_invalid_records_are_rejected_with_the_field(mutate, where, tmp_path):
    record = minimal_record()
    mutate(record)
    path = tmp_path / "bad.json"
    with pytest.raises(UserError, match=re.escape(f"invalid record at {where}")):
        rec.write_record(record, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_diverged_record_has_no_metrics():
    record = minimal_record()
    record.update(status="diverged", status_detail="non-finite loss at step 12", metrics=None)
    rec.validate(record)
    record["status"] = "completed"  # a completed run must report its metrics
    with pytest.raises(UserError, match="invalid record at metrics"):
        rec.validate(record)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "seed0.json"
    rec.write_atomic(path, "old\n")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        rec.write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["seed0.json"]  # no temporary left behind


def test_read_record_reports_bad_json_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{\n  "model": "x",\n  oops\n}')
    with pytest.raises(UserError, match=r"r.json:3: not valid JSON"):
        rec.read_record(path)


def test_record_path_layout():
    assert rec.record_path("results", "trm", "maze", "mini", 2) == Path("results/trm/maze/mini/seed2.json")
    assert rec.record_path("r", "trm", "maze", "paper", 0, "eval") == Path("r/trm/maze/paper/seed0.eval.json")


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(rec.schema())
    assert json.loads(json.dumps(rec.schema()))["properties"]["schema_version"]["const"] == rec.SCHEMA_VERSION
