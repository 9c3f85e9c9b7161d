"""Settings beyond the preset are recorded as data (``provenance.overrides``), whatever gave
them: command-line options, ``--config`` files, ``reasonbench.run`` keywords. The leaderboard
keeps runs with other settings in rows of their own; records made before the field are read
from their command."""

from __future__ import annotations

import json

import pytest

from reasonbench.config import resolve as config
from reasonbench.leaderboard import rank as lb_rank
from reasonbench.leaderboard import tracks as lb_tracks

from .conftest import QUIET, call_cli
from .test_leaderboard import make_record

BASE = ["--model", "trm", "--task", "sudoku", "--preset", "mini"]


def test_overrides_are_the_same_data_whatever_gave_them(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("trainer:\n  max_steps: 6000\noptim:\n  lr: 0.001\n")
    given = {
        "command line": (BASE + ["--trainer.max_steps", "6000", "--optim.lr", "0.001"], None),
        "config file": (BASE + ["--config", str(yaml_file)], None),
        "python keywords": (BASE, {"trainer.max_steps": 6000, "optim": {"lr": 0.001}}),
    }
    for origin, (argv, overrides) in given.items():
        cfg, _ = config.resolve(argv + ["--out", str(tmp_path)], overrides=overrides)
        assert cfg.overrides == {"optim.lr": 0.001, "trainer.max_steps": 6000}, origin


def test_neutral_settings_and_values_equal_to_the_preset_are_no_overrides(tmp_path):
    preset, _ = config.resolve(BASE)
    steps = preset.trainer_args["max_steps"]
    cfg, _ = config.resolve(BASE + ["--seed", "3", "--out", str(tmp_path), "--trainer.max_steps", str(steps),
                                    "--measure.flops_examples", "2", "--trainer.enable_progress_bar", "false",
                                    "--checkpoint_every", "7", "--budget", "10m"])
    assert cfg.overrides == {}


def _twin(record: dict, overrides: dict | None, command: str) -> dict:
    twin = json.loads(json.dumps(record))
    twin["provenance"]["command"] = command
    if overrides is None:
        twin["provenance"].pop("overrides", None)
    else:
        twin["provenance"]["overrides"] = overrides
    return twin


def test_a_python_keyword_run_gets_its_own_row_as_its_command_line_twin_does():
    """The bug this field fixes: ``rb.run(..., **{"trainer.max_steps": 6000})`` records the command
    ``reasonbench.run(...)``, which no option parsing reads; with overrides as data its run is a
    row of its own, beside the preset's, and pooled with its command-line twin."""
    base = make_record(model="trm")
    base["provenance"]["overrides"] = {}
    python = _twin(base, {"trainer.max_steps": 6000},
                   "reasonbench.run('trm', 'sudoku', preset='mini', seed=1, out='results', **{'trainer.max_steps': 6000})")
    python["seed"] = 1
    cli = _twin(base, {"trainer.max_steps": 6000}, "reasonbench run --model trm --task sudoku --preset mini --seed 2 "
                                                   "--trainer.max_steps 6000")
    cli["seed"] = 2
    older = _twin(base, None, "reasonbench run --model trm --task sudoku --preset mini --seed 3 --trainer.max_steps 6000")
    older["seed"] = 3
    records = []
    for i, r in enumerate((base, python, cli, older)):
        r["_file"] = f"r{i}.json"
        records.append(r)
    rows = lb_rank.aggregate(records)
    by_settings = {row["settings"]: row["seeds"] for row in rows}
    assert by_settings == {"": [0], "trainer.max_steps=6000": [1, 2, 3]}
    from reasonbench.leaderboard.pages import model_label

    labels = sorted(model_label(row) for row in rows)
    assert labels == ["trm", "trm [trainer.max_steps=6000]"]


@pytest.mark.parametrize("value, text", [(6000, "6000"), ("bf16-mixed", "bf16-mixed"), (True, "true"),
                                         (None, "null"), (0.001, "0.001"), ([1, 2], "[1, 2]")])
def test_an_override_reads_as_it_would_be_typed(value, text):
    record = make_record()
    record["provenance"]["overrides"] = {"model.x": value, "measure.flops_examples": 3}
    assert lb_tracks.command_settings(record) == [("model.x", text)]


def test_a_real_python_run_and_its_command_line_twin_record_the_same_overrides(tmp_path):
    import reasonbench as rb

    record = rb.run("transformer", "sudoku", preset="smoke", seed=0, out=str(tmp_path), quiet=True,
                    **{"trainer.max_steps": 3, "trainer.enable_progress_bar": False})
    assert record["provenance"]["overrides"] == {"trainer.max_steps": 3}
    assert call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--seed", "1",
                    "--out", str(tmp_path), "--trainer.max_steps", "3", *QUIET).returncode == 0
    twin = json.loads((tmp_path / "transformer/sudoku/smoke/seed1.json").read_text())
    assert twin["provenance"]["overrides"] == {"trainer.max_steps": 3}
    for r in (record, twin):  # smoke runs are never listed: seen as mini runs here
        r.update(preset="mini", _file=f"seed{r['seed']}.json")
        r.pop("_path", None)
    plain = json.loads(json.dumps(twin))
    plain.update(seed=2, _file="seed2.json")
    plain["provenance"]["overrides"] = {}
    rows = lb_rank.aggregate([record, twin, plain])
    assert {row["settings"]: row["seeds"] for row in rows} == {"trainer.max_steps=3": [0, 1], "": [2]}
