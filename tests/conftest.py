"""Shared fixtures: a CLI runner in a subprocess and third-party plugins installed through
real entry points (a ``*.dist-info`` folder on sys.path, as pip would leave it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reasonbench.config import registry

ROOT = Path(__file__).resolve().parent.parent
# the suite runs the seconds-long smoke preset wherever a test names none; a user's default is
# mini (test_cli checks both), and subprocesses inherit this
os.environ["REASONBENCH_PRESET"] = "smoke"
QUIET = ["--trainer.enable_progress_bar", "false"]


def run_cli(*args: str, cwd: Path | None = None, extra_path: Path | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "reasonbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def call_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in this process (fast: no interpreter start, no re-import of torch)."""
    import contextlib
    import io

    from reasonbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def make_plugin_dist(root: Path, dist: str, module: str, source: str, models: dict[str, str],
                     tasks: dict[str, str] | None = None, presets: dict[str, str] | None = None) -> Path:
    """Write ``module`` (a package) and a dist-info declaring its entry points under ``root``."""
    package = root / module
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    for rel, text in (presets or {}).items():
        target = package / "presets" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[reasonbench.models]", *(f"{k} = {v}" for k, v in models.items())]
    if tasks:
        lines += ["", "[reasonbench.tasks]", *(f"{k} = {v}" for k, v in tasks.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Returns a function installing a fake distribution into this process (and tmp_path
    for subprocesses); the registry is refreshed before and after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()

    def install(*args, **kwargs) -> Path:
        make_plugin_dist(tmp_path, *args, **kwargs)
        registry.refresh()
        return tmp_path

    yield install
    registry.refresh()
    for name in [m for m in sys.modules if m.startswith("rbtest_")]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch):
    """Each test session caches built data in a temporary folder, never in ~/.cache."""
    root = tmp_path_factory.getbasetemp() / "data-cache"
    monkeypatch.setenv("REASONBENCH_DATA_CACHE", str(root))
    return root
