"""The benchmark scripts run (their timings are printed, never asserted)."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_sudoku_extreme_scale_builds_the_paper_recipe_and_counts_trm_flops(tmp_path):
    out = subprocess.run([sys.executable, "-m", "reasonbench_benchmarks.sudoku_extreme_scale", "--train-rows", "3000",
                          "--test-rows", "700", "--distinct", "50", "--eval-examples", "1"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    # 1,000 sampled puzzles and 1,000 augmentations of each; the whole test file kept
    assert "(val 100, test 700, train 1,001,000)" in out
    # every one of the 16 segments runs at evaluation: a fixed count for the paper model
    assert "5,028,866 parameters" in out and "410.1 GFLOP per test puzzle at evaluation (16 segments)" in out
    need = re.search(r"H100 \(bf16 dense peak 989 TFLOP/s\): (\d+) s at 100% MFU", out)
    assert need and int(need.group(1)) == round(700 * 410.1e9 / 989.4e12)


def test_reproduce_accepts_the_same_result_and_refuses_another(tmp_path, capsys):
    """The CI check of a committed row: a record re-run to the same counts passes (with the
    record's torch thread count, the caller's restored after), one whose committed count differs
    fails."""
    import json

    import torch

    from reasonbench.cli.main import main as reasonbench
    from reasonbench_benchmarks.reproduce import main as reproduce

    assert reasonbench(["run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path),
                        "--trainer.enable_progress_bar", "false"]) == 0
    record = tmp_path / "transformer/sudoku/smoke/seed0.json"
    data = json.loads(record.read_text())
    threads = torch.get_num_threads()
    assert reproduce([str(record)]) == 0  # the same preset and seed on the same machine: the same counts
    assert f"{data['provenance']['cpu']['threads']} torch threads" in capsys.readouterr().out
    assert torch.get_num_threads() == threads
    assert data["provenance"]["overrides"] == {}  # the preset alone
    again = tmp_path / "again.json"
    data["provenance"]["data_fingerprint"] = "0" * 64  # no run gives this
    again.write_text(json.dumps(data))
    assert reproduce([str(again)]) == 1
    assert "differs" in capsys.readouterr().err
    data["metrics"]["exact_correct"] = data["metrics"]["n_test_examples"] + 1  # refused before any run
    again.write_text(json.dumps(data))
    assert reproduce([str(again)]) == 2
    assert "inconsistent: metrics: exact_correct" in capsys.readouterr().err


def _sweep_record(out, model="trm", seed=0, commit="a" * 40, dirty=False, cpu="AMD EPYC", mode="train", settings=""):
    import json

    from .test_record import minimal_record

    record = minimal_record()
    record.update(model=model, task="maze", preset="mini", seed=seed, mode=mode)
    record["provenance"].update(git_commit=commit, git_dirty=dirty, cpu={"model": cpu, "threads": 1},
                                command=f"reasonbench run --model {model} --task maze --preset mini --seed {seed} "
                                        f"{settings}")
    path = out / model / "maze" / "mini" / (f"seed{seed}.json" if mode == "train" else f"seed{seed}.{mode}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_publish_replaces_a_row_whole_and_keeps_the_others(tmp_path, capsys):
    """A sweep's row replaces the published row's records (seeds it no longer has go too); a row
    the sweep lacks stays, the evaluations of a folder whose training runs are replaced included."""
    import json

    from reasonbench_benchmarks.publish import main as publish

    sweep, published = tmp_path / "sweep", tmp_path / "published"
    for seed in range(3):
        _sweep_record(sweep, seed=seed)
    for seed in range(5):  # an older version of the row, with more seeds
        _sweep_record(published, seed=seed, commit="b" * 40)
    kept = [_sweep_record(published, model="hrm", commit="b" * 40),
            _sweep_record(published, seed=0, mode="eval", commit="b" * 40)]
    assert publish([str(sweep), "--into", str(published), "--commit", "aaaa"]) == 0
    assert "trm/maze/mini (train): 3 records from aaaaaaaaaa (replacing 5)" in capsys.readouterr().out
    row = published / "trm/maze/mini"
    assert sorted(p.name for p in row.iterdir()) == ["seed0.eval.json", "seed0.json", "seed1.json", "seed2.json"]
    assert {json.loads(p.read_text())["provenance"]["git_commit"] for p in row.glob("seed?.json")} == {"a" * 40}
    assert [json.loads(p.read_text())["provenance"]["git_commit"] for p in kept] == ["b" * 40, "b" * 40]
    _sweep_record(sweep, seed=0, mode="eval")  # the sweep's evaluations replace those
    assert publish([str(sweep), "--into", str(published)]) == 0
    assert "trm/maze/mini (eval): 1 records from aaaaaaaaaa (replacing 1)" in capsys.readouterr().out
    assert json.loads(kept[1].read_text())["provenance"]["git_commit"] == "a" * 40


def test_publish_writes_the_machines_output_folder_as_the_standard_layout(tmp_path):
    """A sweep run with --out /srv/sweep/results: the published record names results/ instead,
    in its command, config and checkpoint; everything else is as the run wrote it."""
    import json

    from reasonbench_benchmarks.publish import main as publish

    sweep, published = tmp_path / "sweep", tmp_path / "published"
    path = _sweep_record(sweep)
    record = json.loads(path.read_text())
    out = "/srv/sweep/results"
    record["provenance"]["command"] += f" --out {out}"
    record["provenance"]["config"].update(out=out)
    record["checkpoint"] = f"{out}/trm/maze/mini/seed0/final.pt"
    path.write_text(json.dumps(record))
    assert publish([str(sweep), "--into", str(published)]) == 0
    written = json.loads((published / "trm/maze/mini/seed0.json").read_text())
    assert written["provenance"]["command"].endswith(" --out results")
    assert written["provenance"]["config"]["out"] == "results"
    assert written["checkpoint"] == "results/trm/maze/mini/seed0/final.pt"
    assert "/srv/sweep" not in json.dumps(written)
    for part in (written, record):
        for key in ("command", "config"):
            part["provenance"].pop(key)
        part.pop("checkpoint")
    assert written == record


@pytest.mark.parametrize("spoil, message", [
    (dict(seed=2, commit="c" * 40), "seed2.json: made at cccccccccc on AMD EPYC, but seed0.json of the same row at aaaaaaaaaa"),
    (dict(seed=2, cpu="Intel Xeon"), "seed2.json: made at aaaaaaaaaa on Intel Xeon"),
    (dict(seed=2, dirty=True), "seed2.json: not made from a clean commit"),
    (dict(seed=2, settings="--trainer.max_steps 6000"), "seed2.json: run with settings 'trainer.max_steps=6000', "
                                                        "but seed0.json of the same row with ''"),
])
def test_publish_refuses_a_row_of_mixed_origin_and_changes_nothing(tmp_path, capsys, spoil, message):
    from reasonbench_benchmarks.publish import main as publish

    sweep, published = tmp_path / "sweep", tmp_path / "published"
    for seed in range(2):
        _sweep_record(sweep, seed=seed)
    _sweep_record(sweep, model="hrm")  # a good row beside the bad one is not published either
    _sweep_record(sweep, **spoil)
    old = _sweep_record(published, commit="b" * 40)
    before = old.read_text()
    assert publish([str(sweep), "--into", str(published)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert old.read_text() == before and not (published / "hrm").exists()


def test_publish_names_a_record_made_at_another_commit_and_an_invalid_one(tmp_path, capsys):
    from reasonbench_benchmarks.publish import main as publish

    sweep = tmp_path / "sweep"
    _sweep_record(sweep)
    assert publish([str(sweep), "--into", str(tmp_path / "p"), "--commit", "f95ce76"]) == 2
    assert "seed0.json: made at aaaaaaaaaa, not at --commit f95ce76" in capsys.readouterr().err
    (sweep / "trm/maze/mini/seed1.json").write_text("{")
    assert publish([str(sweep), "--into", str(tmp_path / "p")]) == 2
    assert "seed1.json:1: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def _depth_record(out, model, seed, exact, residual, ood=None, halted=0.5, commit="f" * 40):
    """An evaluation record for 4 steps of a model trained for 2 (halt_max_steps)."""
    import json

    from .test_record import minimal_record

    record = minimal_record()
    record.update(model=model, task="sudoku", preset="mini", seed=seed, mode="eval")
    record["metrics"].update(by_step={"exact": exact, "token": exact, "residual": residual},
                             halted_exact_accuracy=halted)
    if ood is not None:
        record["metrics"]["ood"] = {"n_test_examples": 10, "exact_correct": 0, "by_step": {"exact": ood, "token": ood}}
    record["cost"]["eval_seconds"] = 10.0 + seed
    record["provenance"].update(git_commit=commit, config={"model": {"halt_max_steps": 2}})
    path = out / model / "sudoku" / "mini" / f"seed{seed}.eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_depth_table_averages_each_step_over_seeds(tmp_path, capsys):
    from reasonbench_benchmarks.depth_table import main as depth_table

    _depth_record(tmp_path, "trm", 0, [0.1, 0.5, 0.6, 0.7], [0.4, 0.2, 0.1, 0.05], ood=[0.0, 0.1, 0.2, 0.3])
    _depth_record(tmp_path, "trm", 1, [0.3, 0.5, 0.8, 0.9], [0.2, 0.1, 0.1, 0.03], ood=[0.0, 0.3, 0.2, 0.5],
                  halted=0.7, commit="e" * 40)
    _depth_record(tmp_path, "hrm", 0, [0.0, 0.01, 0.02], [0.9, 0.8, 0.7])  # 3 steps, no OOD split
    assert depth_table([str(tmp_path), "--steps", "1,2,4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model / task | seeds | step 1 | 2 | 4 (mean ± std) | residual trained / last |")
    # hrm first (sorted); its curve ends at step 3, so step 4 and the residual there are "-"
    assert lines[2] == "| hrm / sudoku | 1 | 0.0 | 1.0 | - | 0.800 / - | - | - | - | 50.0 | 10 | fffffff |"
    # trm: means over two seeds; the last step's std over seeds is 14.1 points (70 and 90)
    assert lines[3] == ("| trm / sudoku | 2 | 20.0 | 50.0 | 80.0 ± 14.1 | 0.150 / 0.040 | 0.0 | 20.0 | 40.0 "
                        "| 60.0 | 10 | eeeeeee, fffffff |")
    assert depth_table([str(tmp_path / "hrm"), "--steps", "1,2,4"]) == 2
    assert "no evaluation records" in capsys.readouterr().err
    assert depth_table([str(tmp_path), "--steps", "4,2"]) == 2
    assert "--steps '4,2'" in capsys.readouterr().err


def test_depth_table_writes_between_the_readme_markers_or_changes_nothing(tmp_path, capsys):
    from reasonbench_benchmarks.depth_table import main as depth_table

    _depth_record(tmp_path / "res", "trm", 0, [0.1, 0.5], [0.4, 0.2])
    readme = tmp_path / "README.md"
    readme.write_text("# p\n<!-- begin generated depth table: by depth_table -->\nold\n"
                      "<!-- end of generated depth table -->\nafter\n")
    assert depth_table([str(tmp_path / "res"), "--steps", "1,2", "--readme", str(readme)]) == 0
    lines = readme.read_text().splitlines()
    assert lines[:2] == ["# p", "<!-- begin generated depth table: by depth_table -->"]
    assert lines[4].startswith("| trm / sudoku | 1 | 10.0 | 50.0 | 0.200 / 0.200 |") and lines[5:] == [
        "<!-- end of generated depth table -->", "after"]
    readme.write_text("# p\nno markers\n")
    assert depth_table([str(tmp_path / "res"), "--readme", str(readme)]) == 2
    assert "expected one line starting '<!-- begin generated depth table'" in capsys.readouterr().err
    assert readme.read_text() == "# p\nno markers\n"


def test_committed_results_page_shows_the_committed_depth_records(tmp_path):
    """docs/results.md's reasoning-depth table is what leaderboard/results' evaluation records give."""
    from pathlib import Path

    from reasonbench_benchmarks.depth_table import main as depth_table

    root = Path(__file__).resolve().parent.parent
    built = tmp_path / "results.md"
    built.write_text((root / "docs" / "results.md").read_text())
    assert depth_table([str(root / "leaderboard" / "results"), "--readme", str(built)]) == 0
    assert built.read_text() == (root / "docs" / "results.md").read_text(), \
        "docs/results.md's depth table is stale: run make publish"


def test_committed_readme_summary_shows_the_committed_records(tmp_path):
    """The README's ranking and training-time tables are what leaderboard/results gives."""
    from pathlib import Path

    from reasonbench_benchmarks.readme_summary import main as readme_summary

    root = Path(__file__).resolve().parent.parent
    built = tmp_path / "README.md"
    built.write_text((root / "README.md").read_text())
    assert readme_summary([str(root / "leaderboard" / "results"), "--readme", str(built)]) == 0
    assert built.read_text() == (root / "README.md").read_text(), "README.md's summary is stale: run make publish"


def test_readme_summary_ranks_as_the_leaderboard_and_times_from_the_records(tmp_path):
    """Known records: two models on the Sudoku mini track, one far ahead with tight seeds."""
    import json
    from pathlib import Path

    from reasonbench_benchmarks.readme_summary import summary

    fixture = Path(__file__).parent / "data" / "leaderboard"
    for model, correct in (("trm", (900, 905, 910)), ("hrm", (10, 12, 14))):
        base = json.loads((fixture / "trm" / "sudoku" / "mini" / "seed0.json").read_text())
        for seed, right in enumerate(correct):
            record = json.loads(json.dumps(base))
            n = record["metrics"]["n_test_examples"]
            scale = n / 1000
            right = round(right * scale)
            record.update(model=model, seed=seed)
            record["metrics"].update(exact_correct=right, exact_accuracy=right / n)
            record["metrics"].pop("exact_by_example", None)
            from reasonbench.record.stats import wilson_interval
            record["metrics"]["exact_accuracy_ci95"] = list(wilson_interval(right, n))
            record["cost"]["train_seconds"] = 60.0 * (seed + 1)
            path = tmp_path / model / "sudoku" / "mini" / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
    text = summary(tmp_path)
    lines = [line for line in text.splitlines() if line.startswith("| sudoku")]
    assert [line.split(" | ")[2] for line in lines] == ["`trm`", "`hrm`"]
    assert lines[0].split(" | ")[1] == "1" and lines[1].split(" | ")[1] == "2"
    assert "| `trm` | 2 min | - | - |" in text
