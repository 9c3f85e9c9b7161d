"""``reasonbench data``: info, build, export (round trip through the reader), show."""

from reasonbench.tasks.sudoku import data as sd

from .conftest import call_cli


def test_info_shows_sizes_encoding_and_fingerprint():
    result = call_cli("data", "info", "--task", "sudoku")
    assert result.returncode == 0, result.stderr
    assert "smoke: val 32, test 64, train 256" in result.stdout
    assert "vocab 11, length 81, grid 9x9" in result.stdout
    assert len(next(l for l in result.stdout.splitlines() if l.startswith("fingerprint")).split()[1]) == 64


def test_build_into_a_folder(tmp_path):
    result = call_cli("data", "build", "--task", "sudoku", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "sudoku").glob("*.pt"))) == 1


def test_export_round_trips_through_the_reference_reader(tmp_path):
    out = tmp_path / "test.csv"
    result = call_cli("data", "export", "--task", "sudoku", "--split", "test", "--limit", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0] == "source,question,answer,rating"
    rows = sd.read_csv(out)  # validates every row
    assert rows.questions.shape == (5, 81) and ((rows.questions == 0).sum(1) == 6).all()


def test_show_renders_puzzle_and_answer():
    result = call_cli("data", "show", "--task", "sudoku", "--index", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sudoku test #3: puzzle" and "answer" in lines
    assert sum(l.count(".") for l in lines) == 6  # the 6 blanks, only in the puzzle


def test_bad_data_arguments():
    assert call_cli("data", "show", "--task", "sudoku", "--index", "64").stderr.strip().endswith(
        "--index 64 out of range: the test split has 64 examples")
    assert "invalid choice: 'frob' (choose from 'info', 'build', 'export', 'show')" in call_cli("data", "frob").stderr
    bad = call_cli("data", "info", "--task", "sudoku", "--task.num_blanks", "x")
    assert bad.returncode == 2 and '"task.num_blanks"' in bad.stderr


def test_arc_info_lists_both_bundled_sets():
    result = call_cli("data", "info", "--task", "arc")
    assert result.returncode == 0, result.stderr
    assert "arc1: 400 training + 400 evaluation tasks" in result.stdout
    assert "arc2: 1000 training + 120 evaluation tasks" in result.stdout


def test_export_and_show_the_out_of_distribution_split(tmp_path):
    ood = ["--task", "sudoku", "--task.num_ood", "6", "--task.ood_blanks", "12"]
    out = tmp_path / "ood.csv"
    result = call_cli("data", "export", *ood, "--split", "ood", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 6 sudoku ood puzzles" in result.stdout
    rows = sd.read_csv(out)  # every row valid, with the OOD split's 12 blanks (training puzzles have 6)
    assert rows.questions.shape == (6, 81) and ((rows.questions == 0).sum(1) == 12).all()
    assert call_cli("data", "show", *ood, "--split", "ood", "--index", "5").returncode == 0
    none = call_cli("data", "export", "--task", "sudoku", "--split", "ood", "--out", str(tmp_path / "x.csv"))
    assert none.returncode == 2 and "built no ood split" in none.stderr and "--task.num_ood" in none.stderr
    assert not (tmp_path / "x.csv").exists()
    assert "one of train, val, test, ood" in call_cli("data", "export", "--task", "sudoku", "--split", "dev",
                                                      "--out", str(out)).stderr


def test_skipped_rows_are_counted_in_build_and_info(tmp_path):
    export = call_cli("data", "export", "--task", "sudoku", "--split", "train", "--limit", "30",
                      "--out", str(tmp_path / "train.csv"))
    assert export.returncode == 0, export.stderr
    call_cli("data", "export", "--task", "sudoku", "--split", "test", "--limit", "6", "--out", str(tmp_path / "test.csv"))
    with (tmp_path / "train.csv").open("a") as handle:
        handle.write("x,not a grid,nor this,1\nx,1,2\n")
    with (tmp_path / "test.csv").open("a") as handle:
        handle.write("x,?,?,?\n")
    args = ["--task", "sudoku", "--task.path", str(tmp_path), "--task.num_train", "20", "--task.num_val", "4",
            "--task.num_test", "null", "--task.skip_invalid", "true"]
    built = call_cli("data", "build", *args, "--out", str(tmp_path / "cache"))
    assert built.returncode == 0, built.stderr
    assert "skipped     3 invalid rows skipped (train.csv 2, test.csv 1)" in built.stdout
    info = call_cli("data", "info", *args)
    assert "skipped      3 invalid rows skipped (train.csv 2, test.csv 1)" in info.stdout
    strict = call_cli("data", "info", *args[:-2])  # without skip_invalid the first bad row stops the build
    assert strict.returncode == 2 and "train.csv:32:" in strict.stderr and "skip_invalid" in strict.stderr
