"""Maze-Unique (the maze task's 'unique' variant): generation as EqR's builder, its array layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import reasonbench as rb
from reasonbench.util.errors import UserError
from reasonbench.tasks.maze import data
from reasonbench.tasks.maze.encoding import GOAL, OPEN, PATH, START, WALL
from reasonbench.tasks.maze.generate import PathCheck, check_paths
from reasonbench.tasks.maze.unique import default_lengths, generate_unique_mazes, shortest_path_counts


def _digest(*splits) -> str:
    return hashlib.sha256(b"".join(q.astype(np.uint8).tobytes() + a.astype(np.uint8).tobytes()
                                   for s in splits for q, a in zip(s.questions, s.answers))).hexdigest()


# Computed by running the reference builder's own functions (dataset/build_maze_unique_dataset.py
# of locuslab/EqR: _sample_length, _generate_single_sample, _maze_to_arrays, its dedupe) with
# maze_mode perfect, uniform lengths, require_unique, on np.random.default_rng(seed): the
# questions and answers (uint8) of every maze, training first, hashed in order.
REFERENCE_DIGESTS = [
    ((30, (100, 140), 42, 5, 3), "fefec53162fd7a5a414da14c1ed639491b9ee971a3f4dd0ee5a23485b94f93f8",
     [103, 101, 132, 139, 120, 129, 110, 116]),
    ((9, (6, 10), 3, 40, 20), "02a81295383ee1e7a87490f978285239160b42d928dbb61bce8a78d52d039557", None),
]


@pytest.mark.parametrize("settings, digest, lengths", REFERENCE_DIGESTS)
def test_generation_gives_the_reference_builders_mazes(settings, digest, lengths) -> None:
    size, length_range, seed, n_train, n_test = settings
    train, test = generate_unique_mazes(n_train, n_test, size, length_range, seed)
    assert _digest(train, test) == digest
    if lengths is not None:
        assert [*train.path_lengths, *test.path_lengths] == lengths


def _is_perfect(open_mask: np.ndarray) -> bool:
    """A tree: connected, and one fewer 4-neighbour adjacency than open cells."""
    edges = int((open_mask[1:] & open_mask[:-1]).sum() + (open_mask[:, 1:] & open_mask[:, :-1]).sum())
    cells = np.argwhere(open_mask)
    seen, stack = {tuple(cells[0])}, [tuple(cells[0])]
    while stack:
        y, x = stack.pop()
        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            inside = 0 <= ny < open_mask.shape[0] and 0 <= nx < open_mask.shape[1]
            if inside and open_mask[ny, nx] and (ny, nx) not in seen:
                seen.add((ny, nx))
                stack.append((ny, nx))
    return len(seen) == len(cells) and edges == len(cells) - 1


@pytest.mark.parametrize("size", [8, 11])
def test_every_generated_maze_is_perfect_with_one_shortest_path_in_range(size) -> None:
    low, high = default_lengths(size)
    train, test = generate_unique_mazes(60, 20, size, (low, high), 7)
    questions = np.concatenate([train.questions, test.questions])
    answers = np.concatenate([train.answers, test.answers])
    lengths = np.concatenate([train.path_lengths, test.path_lengths])
    assert len({q.tobytes() for q in questions}) == len(questions)  # no maze twice, training or test
    for q in questions:
        grid = q.reshape(size, size)
        assert _is_perfect(grid != WALL)
        if size % 2 == 0:  # the odd sub-grid holds the maze; the last row and column are walls
            assert (grid[-1] == WALL).all() and (grid[:, -1] == WALL).all()
        assert (grid[::2, ::2] == WALL).all()  # cells at odd coordinates, walls between
    steps, count = shortest_path_counts(questions, size)
    assert (count == 1).all() and np.array_equal(steps, lengths)
    assert ((lengths >= low) & (lengths <= high)).all()
    check = check_paths(torch.from_numpy(questions).long(), torch.from_numpy(answers).long(), size)
    assert (check.codes == PathCheck.OK).all()


def test_encoding_is_the_reference_charset() -> None:
    train, _ = generate_unique_mazes(5, 1, 9, (6, 10), 0)
    for q, a, steps in zip(train.questions, train.answers, train.path_lengths):
        assert set(data.decode(q)) <= set("# SG") and data.decode(q).count("S") == data.decode(q).count("G") == 1
        assert set(data.decode(a)) <= set("# SGo") and data.decode(a).count("o") == steps - 1
        assert np.array_equal(data.encode(data.decode(a)), a)  # '#'=1 ' '=2 'S'=3 'G'=4 'o'=5
        assert np.array_equal(np.where(a == PATH, OPEN, a), q)
    assert (WALL, OPEN, START, GOAL, PATH) == (1, 2, 3, 4, 5)


def test_shortest_path_counts_on_known_mazes() -> None:
    grids = ["S  "
             "   "
             "  G",  # open 3x3: 6 shortest paths (capped at 2)
             "S##"
             " ##"
             "  G",  # one way round
             "S#G"
             "###"
             "   "]  # G unreachable
    steps, count = shortest_path_counts(np.stack([data.encode(g) for g in grids]), 3)
    assert steps.tolist() == [4, 4, -1] and count.tolist() == [2, 1, 0]


# --- the task -------------------------------------------------------------------------------


def _write_arrays(root: Path, train, test) -> None:
    """The reference builder's layout: uint8 arrays per split."""
    for name, split in (("train", train), ("test", test)):
        (root / name).mkdir(parents=True)
        np.save(root / name / "all__inputs.npy", split.questions.astype(np.uint8))
        np.save(root / name / "all__labels.npy", split.answers.astype(np.uint8))


def test_the_task_generates_and_reads_the_reference_layout(tmp_path) -> None:
    settings = dict(size=9, num_train=40, num_val=8, num_test=20, variant="unique", unique_path_length=(6, 10),
                    data_seed=3)
    generated = rb.create_task("maze", preset="smoke", **settings)
    train, test = generate_unique_mazes(48, 20, 9, (6, 10), 3)
    assert torch.equal(generated.splits["test"].inputs, torch.from_numpy(test.questions).long())
    assert generated.data_source()["kind"] == "generated" and generated.recipe()["variant"] == "unique"
    _write_arrays(tmp_path / "maze-9x9-unique", train, test)
    read = rb.create_task("maze", preset="smoke", path=str(tmp_path / "maze-9x9-unique"), **settings)
    for split in ("train", "val", "test"):
        assert torch.equal(read.splits[split].inputs, generated.splits[split].inputs)
        assert torch.equal(read.splits[split].labels, generated.splits[split].labels)
    assert read.data_source()["kind"] == "local" and sorted(read.data_source()["files"]) == [
        "test/all__inputs.npy", "test/all__labels.npy", "train/all__inputs.npy", "train/all__labels.npy"]


def test_the_default_maze_task_is_unchanged() -> None:
    task = rb.create_task("maze", preset="smoke")
    assert "variant" not in task.recipe()
    assert task.generated_source()["generator"].startswith("reasonbench.tasks.maze (")


def test_bad_maze_unique_data_is_one_line(tmp_path) -> None:
    train, test = generate_unique_mazes(20, 10, 9, (6, 10), 1)
    root = tmp_path / "data"
    _write_arrays(root, train, test)
    # row 0 of the test split becomes an open 3x3 room, S and G in opposite corners: a valid
    # shortest path is labelled, but there are six
    q = np.full((9, 9), WALL, dtype=np.int8)
    q[1:4, 1:4] = OPEN
    q[1, 1], q[3, 3] = START, GOAL
    a = q.copy()
    a[1, 2], a[1, 3], a[2, 3] = PATH, PATH, PATH
    np.save(root / "test" / "all__inputs.npy", np.stack([q.reshape(-1), *test.questions[1:]]).astype(np.uint8))
    np.save(root / "test" / "all__labels.npy", np.stack([a.reshape(-1), *test.answers[1:]]).astype(np.uint8))
    args = dict(size=9, num_train=10, num_val=2, num_test=None, variant="unique", path=str(root), batch_size=4)
    with pytest.raises(UserError) as info:
        rb.create_task("maze", preset="smoke", **args)
    assert str(info.value).startswith(f"{root / 'test' / 'all__inputs.npy'} row 0: more than one shortest path")
    skipped = rb.create_task("maze", preset="smoke", skip_invalid=True, **args)
    assert len(skipped.splits["test"]) == 9 and skipped.skipped_rows["test/all__inputs.npy"] == 1
    # a pickled object array is never loaded
    with open(root / "train" / "all__inputs.npy", "wb") as handle:
        np.save(handle, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="not a plain .npy array"):
        rb.create_task("maze", preset="smoke", **{**args, "data_seed": 1})
    np.save(root / "train" / "all__inputs.npy", train.questions[:, :40])
    with pytest.raises(UserError, match=r"expected integer token ids of shape \[mazes, 81\]"):
        rb.create_task("maze", preset="smoke", **{**args, "data_seed": 2})


@pytest.mark.parametrize("args, message", [
    ({"variant": "easy"}, "task.variant must be one of hard, unique"),
    ({"unique_path_length": (6, 10)}, "task.unique_path_length applies to task.variant unique only"),
    ({"variant": "unique", "num_ood": 10}, "task.num_ood"),
    ({"variant": "unique", "unique_path_length": (10, 6)}, "task.unique_path_length must be"),
])
def test_bad_variant_options(args, message) -> None:
    with pytest.raises(UserError, match=message):
        rb.create_task("maze", preset="smoke", **args)


def test_the_task_reads_the_reference_arrays_from_the_hub(tmp_path, monkeypatch) -> None:
    """EqR's data set layout on the Hub: ``maze-30x30-unique-1k/{train,test}/all__*.npy`` in a
    dataset repository, read offline from the cache (built as huggingface_hub lays it out)."""
    import io

    from .test_hub import hub_commit

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train, test = generate_unique_mazes(30, 10, 9, (6, 10), 4)
    files = {}
    for split, mazes in (("train", train), ("test", test)):
        for name, array in (("all__inputs.npy", mazes.questions), ("all__labels.npy", mazes.answers)):
            buffer = io.BytesIO()
            np.save(buffer, array.astype(np.uint8))
            files[f"maze-9x9-unique/{split}/{name}"] = buffer.getvalue()
    commit = hub_commit(cache, "owner/eqr-data", files)
    task = rb.create_task("maze", preset="smoke", path="hf://owner/eqr-data:maze-9x9-unique", size=9, num_train=24,
                          num_val=6, num_test=None, variant="unique", batch_size=8)
    assert torch.equal(task.splits["test"].inputs, torch.from_numpy(test.questions).long())
    source = task.data_source()
    assert source["kind"] == "hub" and source["revision"] == commit and len(source["files"]) == 4
    assert source["skipped_rows"] == {"train/all__inputs.npy": 0, "test/all__inputs.npy": 0}
