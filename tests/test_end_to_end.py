"""A real smoke run through the Python API and the CLI: record, checkpoint, eval, determinism."""

import json

import pytest

import reasonbench as rb
from reasonbench.record import schema as rec

from .conftest import QUIET, call_cli, run_cli

FAST = {"trainer.enable_progress_bar": False}


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return rb.run("transformer", "sudoku", preset="smoke", seed=0, out=str(out), **FAST), out


def test_smoke_run_writes_a_complete_valid_record(smoke_record):
    record, out = smoke_record
    path = out / "transformer" / "sudoku" / "smoke" / "seed0.json"
    on_disk = rec.read_record(path)  # validates against the schema
    assert on_disk["status"] == "completed" and on_disk["mode"] == "train"
    m, c, p = on_disk["metrics"], on_disk["cost"], on_disk["provenance"]
    assert m["n_test_examples"] == 64
    assert m["exact_accuracy_ci95"][0] <= m["exact_accuracy"] <= m["exact_accuracy_ci95"][1]
    assert 0.9 < m["token_accuracy"] <= 1.0  # 75 of 81 cells are clues the model learns to copy
    assert c["params"] == 58_048 and c["params_extra"] == 0
    assert c["train_steps"] == 24
    assert c["train_flops"] == pytest.approx(c["train_flops_per_step"] * 24)
    # backward costs about twice the forward: a step is ~3x the forward of its 32 examples
    ratio = c["train_flops_per_step"] / (32 * c["flops_per_example_forward"]["mean"])
    assert 2.5 < ratio < 3.5
    assert p["config"]["model"]["hidden_size"] == 32 and p["config"]["trainer"]["max_steps"] == 24
    assert len(p["data_fingerprint"]) == 64 and len(p["test_data_fingerprint"]) == 64
    assert (path.parent / "seed0" / "final.pt").is_file()
    assert (path.parent / "seed0" / "checkpoints" / "last.ckpt").is_file()
    assert any((path.parent / "seed0" / "tensorboard").rglob("events.out.tfevents.*"))


def test_same_seed_gives_same_metrics(smoke_record, tmp_path):
    record, _ = smoke_record
    again = rb.run("transformer", "sudoku", preset="smoke", seed=0, out=str(tmp_path), **FAST)
    assert again["metrics"] == record["metrics"]
    assert again["provenance"]["data_fingerprint"] == record["provenance"]["data_fingerprint"]
    assert again["provenance"]["test_data_fingerprint"] == record["provenance"]["test_data_fingerprint"]


def test_eval_of_the_final_checkpoint_reproduces_the_metrics(smoke_record, tmp_path):
    record, _ = smoke_record
    result = call_cli("eval", "--model", "transformer", "--task", "sudoku", "--checkpoint", record["checkpoint"],
                      "--out", str(tmp_path), *QUIET)
    assert result.returncode == 0, result.stderr
    evaluated = rec.read_record(tmp_path / "transformer" / "sudoku" / "smoke" / "seed0.eval.json")
    assert evaluated["mode"] == "eval" and evaluated["metrics"] == record["metrics"]
    assert evaluated["cost"]["train_seconds"] == 0


def test_checkpoint_of_another_shape_is_refused(smoke_record, tmp_path):
    record, _ = smoke_record
    result = call_cli("eval", "--model", "transformer", "--task", "sudoku", "--checkpoint", record["checkpoint"],
                      "--model.hidden_size", "64", "--out", str(tmp_path), *QUIET)
    assert result.returncode == 2 and "does not fit model transformer" in result.stderr
    assert not any(tmp_path.rglob("*.json"))


def test_cli_smoke_run_prints_summary_and_record_path(tmp_path):
    result = run_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke",
                     "--trainer.max_steps", "4", "--out", str(tmp_path), *QUIET)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"record: {tmp_path / 'transformer' / 'sudoku' / 'smoke' / 'seed0.json'}"
    assert "exact accuracy" in result.stdout and "parameters               58,048" in result.stdout
    data = json.loads((tmp_path / "transformer" / "sudoku" / "smoke" / "seed0.json").read_text())
    assert data["cost"]["train_steps"] == 4
    assert data["provenance"]["command"].startswith("reasonbench run --model transformer")


DIVERGING = """
import torch
from reasonbench_plugins.transformer import TransformerModel

class Diverging(TransformerModel):
    def training_loss(self, batch):
        loss, logs = super().training_loss(batch)
        return (loss * float("nan") if self.global_step >= 2 else loss), logs
"""


def test_divergence_is_recorded_without_accuracy(plugin_path, tmp_path):
    presets = {"models/diverging/sudoku/smoke.yaml": """
        model: {hidden_size: 16, num_layers: 1, num_heads: 2}
        trainer: {max_steps: 10, enable_model_summary: false, enable_progress_bar: false}
        measure: {flops_examples: 1}
    """}
    plugin_path("rbtest-div", "rbtest_div", DIVERGING, {"diverging": "rbtest_div:Diverging"}, presets=presets)
    result = call_cli("run", "--model", "diverging", "--task", "sudoku", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = rec.read_record(tmp_path / "diverging" / "sudoku" / "smoke" / "seed0.json")
    assert record["status"] == "diverged" and record["metrics"] is None
    assert record["status_detail"] == "non-finite training loss (nan) at step 2"
    assert record["cost"]["train_steps"] == 2
    assert "diverged: non-finite training loss" in result.stdout


def test_run_help_without_model_lists_the_commands_own_options():
    result = call_cli("run", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option in ("--model.name NAME", "--resume", "--overwrite", "--eval-depth", "--print_config", "--budget",
                   "--trainer.logger", "--trainer.callbacks", "--model M --task T --help"):
        assert option in text, option
    assert "--model.hidden_size" not in text  # the model's options need the model


def test_help_with_model_and_task_shows_the_presets_values_as_defaults():
    result = call_cli("run", "--model", "trm", "--task", "maze", "--preset", "mini", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    # the docstring's description, the mini preset's value (not the class default 512)
    assert "--model.hidden_size HIDDEN_SIZE width (512 in the paper). (type: int, default: 64)" in text
    assert "--trainer.max_steps MAX_STEPS" in text and "default: 2000" in text
    assert "--task.size SIZE" in text and "(type: int, default: 6)" in text


def test_arc_smoke_run_scores_by_vote_and_writes_a_submission(tmp_path):
    record = rb.run("transformer", "arc", preset="smoke", seed=0, out=str(tmp_path), **FAST)
    m = record["metrics"]
    assert m["n_tasks"] == 6 and 0 <= m["pass@2_strict"] <= m["pass@2"] <= 1
    submission = json.loads(open(record["submission"]).read())
    assert len(submission) == 6
    attempts = next(iter(submission.values()))[0]
    assert set(attempts) == {"attempt_1", "attempt_2"} and isinstance(attempts["attempt_1"], list)
    assert rec.read_record(tmp_path / "transformer" / "arc" / "smoke" / "seed0.json")["submission"] == record["submission"]


def test_logger_and_callbacks_come_from_the_command_line(tmp_path):
    """--trainer.logger / --trainer.callbacks as LightningCLI takes them: a CSV log with the
    learning rate a LearningRateMonitor wrote, no TensorBoard folder; both in the record's config."""
    logs = tmp_path / "logs"
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path),
                      "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(logs),
                      "--trainer.callbacks+=LearningRateMonitor", "--trainer.callbacks.logging_interval", "step",
                      *QUIET)
    assert result.returncode == 0, result.stderr
    metrics = (logs / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    assert "lr-AdamW" in header and "train/loss" in header and len(metrics) > 3
    run_dir = tmp_path / "transformer" / "sudoku" / "smoke" / "seed0"
    assert not (run_dir / "tensorboard").exists()
    record = rec.read_record(tmp_path / "transformer" / "sudoku" / "smoke" / "seed0.json")
    trainer = record["provenance"]["config"]["trainer"]
    assert trainer["logger"]["class_path"] == "lightning.pytorch.loggers.CSVLogger"
    assert trainer["callbacks"][0]["init_args"]["logging_interval"] == "step"
    bad = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path / "b"),
                   "--trainer.logger", "os.system")
    assert bad.returncode == 2 and "trainer.logger" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
