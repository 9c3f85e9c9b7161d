import math
from collections import deque

import numpy as np
import pytest
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.maze import MazeTask
from reasonbench.tasks.maze import data as md
from reasonbench.tasks.maze.generate import (PathCheck, astar_path, check_paths, generate_mazes, maze_keys,
                                             wall_count_range,
                                             valid_shortest_paths)

# A 5x5 maze with one shortest path: 16 steps, 15 'o' cells between S and G.
SNAKE_Q = "S    " "#### " "     " " ####" "    G"
SNAKE_A = "Soooo" "####o" "ooooo" "o####" "ooooG"


def bfs_steps(question: str, size: int) -> int:
    """Plain breadth-first search, independent of the code under test."""
    s, g = question.index("S"), question.index("G")
    dist = {s: 0}
    queue = deque([s])
    while queue:
        v = queue.popleft()
        r, c = divmod(v, size)
        for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            u = rr * size + cc
            if 0 <= rr < size and 0 <= cc < size and question[u] != "#" and u not in dist:
                dist[u] = dist[v] + 1
                queue.append(u)
    return dist.get(g, -1)


def ids(*grids: str) -> torch.Tensor:
    return torch.from_numpy(np.stack([md.encode(g) for g in grids])).long()


def small(**kwargs) -> MazeTask:
    args = dict(size=8, min_path_length=12, num_train=24, num_val=4, num_test=8, batch_size=4, eval_batch_size=8)
    task = MazeTask(**{**args, **kwargs})
    task.setup()
    return task


def test_reference_encoding_round_trip():
    grid = md.encode("# SGo")
    assert grid.tolist() == [1, 2, 3, 4, 5]
    assert md.decode(md.encode(SNAKE_A)) == SNAKE_A
    assert md.decode(np.array([0, 1, 9])) == "?#?"  # pad and garbage ids are shown, not hidden
    meta = small().metadata
    assert (meta.vocab_size, meta.seq_len, meta.grid_shape, meta.num_puzzle_ids) == (6, 64, (8, 8), 1)
    assert meta.extra_metrics == ("valid_path",)


def test_checker_accepts_equal_alternatives_and_rejects_the_rest():
    q = "S   " "    " " #  " "   G"
    right_then_down = "Sooo" "   o" " # o" "   G"
    down_then_right = "S   " "o   " "o#  " "oooG"
    longer = "Sooo" "   o" " #oo" "  oG"  # 7 marked cells: not shortest
    broken = "Soo " "   o" " # o" "   G"  # a gap: right count minus one
    through_wall = "S   " "o   " "oo  " " ooG"  # turns the wall into 'o'
    extra = "Sooo" "o  o" " # o" "   G"  # shortest path plus a stray cell
    disconnected = "Soo " "   o" " # o" "o  G"  # right count, but no S-G path
    moved_goal = "Sooo" "   o" " # G" "    "
    preds = [right_then_down, down_then_right, longer, broken, through_wall, extra, disconnected, moved_goal]
    check = check_paths(ids(*[q] * len(preds)), ids(*preds), 4)
    assert check.codes.tolist() == [PathCheck.OK, PathCheck.OK, PathCheck.WRONG_LENGTH, PathCheck.WRONG_LENGTH,
                                    PathCheck.ALTERED, PathCheck.WRONG_LENGTH, PathCheck.DISCONNECTED,
                                    PathCheck.ALTERED]
    assert check.shortest.tolist() == [6] * len(preds)
    assert valid_shortest_paths(ids(q, q), ids(down_then_right, q), 4).tolist() == [True, False]


def test_start_and_goal_written_as_path_are_tolerated(tmp_path):
    q = "S   " "    " " #  " "   G"
    as_path = "oooo" "   o" " # o" "   o"  # the other convention: S and G inside the path
    assert valid_shortest_paths(ids(q), ids(as_path), 4).all()
    write_rows(tmp_path / "data.csv", [f"x,{SNAKE_Q},o{SNAKE_A[1:-1]}o,0"])
    rows = md.read_csv(tmp_path / "data.csv", size=5)
    assert md.decode(rows.answers[0])[0] == "o" and rows.path_lengths[0] == 16  # kept as the file has it


def test_checker_flags_malformed_and_unsolvable_questions():
    no_goal = "S   " * 4
    walled = "S#  " "##  " "    " "   G"
    check = check_paths(ids(no_goal, walled), ids(no_goal, walled), 4)
    assert check.codes.tolist() == [PathCheck.MALFORMED, PathCheck.UNSOLVABLE]


def test_astar_follows_searchformer_tie_breaking():
    passable = np.array([c != "#" for c in "S   " "    " " #  " "   G"])
    path = astar_path(passable, 4, 0, 15)
    assert len(path) == 7
    # equal f: the lower row-major index is expanded first, so row 0 is walked before column 0
    assert path[:4] == [0, 1, 2, 3]


def test_generation_is_deterministic_seeded_and_prefix_stable():
    a = generate_mazes(12, size=8, min_path_length=12, seed=3)
    b = generate_mazes(12, size=8, min_path_length=12, seed=3)
    c = generate_mazes(12, size=8, min_path_length=12, seed=4)
    assert np.array_equal(a.questions, b.questions) and np.array_equal(a.answers, b.answers)
    assert not np.array_equal(a.questions, c.questions)
    assert np.array_equal(generate_mazes(5, size=8, min_path_length=12, seed=3).questions, a.questions[:5])
    assert len({q.tobytes() for q in a.questions}) == 12


def test_wall_counts_span_30_to_50_percent_of_the_cells():
    assert wall_count_range(900) == (270, 450)  # Searchformer's bounds for 30x30
    assert wall_count_range(36) == (11, 18)  # the mini preset's 6x6: 30.6% .. 50%
    assert wall_count_range(64) == (20, 32)


@pytest.mark.parametrize("size, min_path_length, count", [(6, 6, 300), (8, 12, 40), (12, 30, 10), (30, 110, 2)])
def test_generated_mazes_are_hard_and_answers_are_shortest_paths(size, min_path_length, count):
    mazes = generate_mazes(count, size=size, min_path_length=min_path_length, seed=1)
    cells = size * size
    lo, hi = math.ceil(0.3 * cells), math.floor(0.5 * cells)
    for q, a, length in zip(mazes.questions, mazes.answers, mazes.path_lengths):
        text = md.decode(q)
        assert set(text) <= set("# SG") and text.count("S") == 1 and text.count("G") == 1
        assert lo <= text.count("#") <= hi
        assert bfs_steps(text, size) == length > min_path_length
        assert (a == md.PATH).sum() == length - 1
    check = check_paths(torch.from_numpy(mazes.questions).long(), torch.from_numpy(mazes.answers).long(), size)
    assert (check.codes == PathCheck.OK).all()
    assert 0 < mazes.acceptance <= 1 and mazes.reference_acceptance <= mazes.acceptance


def test_impossible_length_gives_a_user_error():
    with pytest.raises(UserError, match="lower task.min_path_length"):
        generate_mazes(1, size=3, min_path_length=7, give_up_after=1)
    with pytest.raises(ValueError, match="task.min_path_length"):
        MazeTask(size=4, min_path_length=15)


def test_generated_splits_sizes_labels_and_scores():
    task = small()
    assert task.sizes() == {"val": 4, "test": 8, "train": 24}
    for split in task.splits.values():
        assert (split.labels >= 1).all()  # every cell supervised
        assert task.score(split.inputs, split.labels, split.labels)["valid_path"].all()
        assert not task.score(split.inputs, split.inputs, split.labels)["valid_path"].any()
        assert (split.info["path_length"] > 12).all() and (split.puzzle_ids == 0).all()
    batch = next(iter(task.train_dataloader()))
    assert set(batch) == {"inputs", "labels", "puzzle_ids"} and batch["inputs"].shape == (4, 64)
    a, b, c = small(), small(), small(data_seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_test_mazes_never_repeat_training_mazes_or_their_images():
    task = small(num_train=60, num_val=4, num_test=40, min_path_length=10)
    train = maze_keys(torch.cat([task.splits["train"].inputs, task.splits["val"].inputs]).numpy(), 8)
    assert not {q.numpy().astype(np.int8).tobytes() for q in task.splits["test"].inputs} & train


def test_dihedral_augmentation_keeps_paths_valid():
    task = small(dihedral_augment=True)
    train = task.splits["train"]
    assert len(train) == 24 * 8 and len(task.splits["test"]) == 8  # the test split is never augmented
    assert valid_shortest_paths(train.inputs, train.labels, 8).all()
    assert (train.info["path_length"].view(8, 24) == train.info["path_length"][:24]).all()
    images = {train.inputs[k * 24].numpy().astype(np.int8).tobytes() for k in range(8)}
    assert len(images) == 8 and images == maze_keys(train.inputs[:1].numpy(), 8)


def write_rows(path, rows):
    path.write_text("\n".join(["source,question,answer,rating", *rows]) + "\n")


def test_csv_round_trip_and_reference_directory(tmp_path):
    train = generate_mazes(14, size=8, min_path_length=12, seed=5)
    test = generate_mazes(5, size=8, min_path_length=12, seed=6)
    md.write_csv(tmp_path / "train.csv", train.questions, train.answers, train.path_lengths)
    md.write_csv(tmp_path / "test.csv", test.questions, test.answers, np.full(5, 7))
    rows = md.read_csv(tmp_path / "train.csv", size=8)
    assert np.array_equal(rows.questions, train.questions) and np.array_equal(rows.answers, train.answers)
    assert np.array_equal(rows.path_lengths, train.path_lengths) and rows.sources == ["reasonbench"] * 14
    task = small(path=str(tmp_path), num_train=10, num_val=2, num_test=None)
    assert task.sizes() == {"val": 2, "test": 5, "train": 10}
    assert (task.splits["test"].info["rating"] == 7).all()
    out = tmp_path / "export.csv"
    assert task.export_csv("test", out, limit=3) == 3
    assert np.array_equal(md.read_csv(out, size=8).questions, test.questions[:3])


@pytest.mark.parametrize("bad, message", [
    (f"x,{SNAKE_Q[:-1]},{SNAKE_A},1", "question has 24 cells, expected 25"),
    (f"x,{SNAKE_Q},{SNAKE_A[:-1]}x,1", r"answer has 'x' at cell 24 \(row 4, column 4\)"),
    (f"x,{SNAKE_Q[:-1]}o,{SNAKE_A},1", "question has 'o' at cell 24"),
    (f"x,{SNAKE_Q[:-1]} ,{SNAKE_A},1", "question has 0 'G' cells"),
    (f"x,SS{SNAKE_Q[2:]},{SNAKE_A},1", "question has 2 'S' cells"),
    (f"x,{SNAKE_Q},{SNAKE_A}", "expected 4 fields, got 3"),
    (f"x,{SNAKE_Q},{SNAKE_A},hard", "rating 'hard' is not an integer"),
    (f"x,{SNAKE_Q},{SNAKE_A[:5]}o{SNAKE_A[6:]},1", r"answer has 'o' at cell 5 \(row 1, column 0\) where the question has '#'"),
    (f"x,{SNAKE_Q},{SNAKE_A[:12]} {SNAKE_A[13:]},1", "answer marks 14 path cells, but a shortest path"),
    (f"x,{SNAKE_Q[:9]}#{SNAKE_Q[10:]},{SNAKE_A[:9]}#{SNAKE_A[10:]},1", "G cannot be reached from S"),
])
def test_invalid_row_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "data.csv"
    good = f"x,{SNAKE_Q},{SNAKE_A},0"
    write_rows(path, [good, good, bad, good])
    with pytest.raises(UserError, match=rf"data.csv:4: .*{message}"):
        md.read_csv(path, size=5)
    rows = md.read_csv(path, size=5, skip_invalid=True)
    assert len(rows.questions) == 3 and rows.skipped == 1 and (rows.path_lengths == 16).all()


def test_first_bad_line_is_reported_whatever_the_kind(tmp_path):
    path = tmp_path / "data.csv"
    detour = SNAKE_A.replace("ooooG", "oooG ")  # line 2: a path error found by the batched check
    write_rows(path, [f"x,{SNAKE_Q},{detour},0", f"x,{SNAKE_Q},{SNAKE_A}"])  # line 3: a parse error
    with pytest.raises(UserError, match=r"data.csv:2: "):
        md.read_csv(path, size=5)


def test_bad_header_is_line_one_and_size_mismatch_is_named(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(f"q,a\n{SNAKE_Q},{SNAKE_A}\n")
    with pytest.raises(UserError, match=r"data.csv:1: expected header"):
        md.read_csv(path, size=5)
    write_rows(path, [f"x,{SNAKE_Q},{SNAKE_A},0"])
    with pytest.raises(UserError, match=r"data.csv:2: question has 25 cells, expected 36 \(task.size 6\)"):
        md.read_csv(path, size=6)


def test_render_marks_wrong_cells():
    task = small()
    split = task.splits["test"]
    label = split.labels[0]
    wrong = label.clone()
    first_path_cell = int(torch.nonzero(label == md.PATH)[0])
    wrong[first_path_cell] = md.OPEN
    picture = task.render(split.inputs[0], wrong, label)
    assert picture.count("-") == 1 and len(picture.splitlines()) == 8
    assert task.render(label).count("o") == int((label == md.PATH).sum())


def test_skipped_rows_are_counted_per_file_and_kept_with_the_cached_data(tmp_path):
    train = generate_mazes(14, size=8, min_path_length=12, seed=5)
    test = generate_mazes(5, size=8, min_path_length=12, seed=6)
    md.write_csv(tmp_path / "train.csv", train.questions, train.answers, train.path_lengths)
    md.write_csv(tmp_path / "test.csv", test.questions, test.answers, test.path_lengths)
    with (tmp_path / "train.csv").open("a") as handle:
        handle.write(f"x,{SNAKE_Q},{SNAKE_A},1\n")  # 5x5 in an 8x8 data set
    task = small(path=str(tmp_path), num_train=10, num_val=2, num_test=None, skip_invalid=True)
    assert task.skipped_rows == {"train.csv": 1, "test.csv": 0}
    assert task.skipped_report() == "1 invalid row skipped (train.csv 1, test.csv 0)"
    cached = small(path=str(tmp_path), num_train=10, num_val=2, num_test=None, skip_invalid=True)
    assert cached.fingerprint == task.fingerprint and cached.skipped_rows == task.skipped_rows
    source = cached.data_source()
    assert source["kind"] == "local" and source["skipped_rows"] == {"train.csv": 1, "test.csv": 0}
    assert set(source["files"]) == {"train.csv", "test.csv"}


def test_ood_split_exports_in_the_reference_layout(tmp_path):
    task = small(num_ood=4)
    assert task.export_csv("ood", tmp_path / "ood.csv") == 4
    rows = md.read_csv(tmp_path / "ood.csv", size=8)
    longest = int(task.splits["train"].info["path_length"].max())
    assert (rows.path_lengths > longest).all()
