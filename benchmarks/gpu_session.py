"""One prepared GPU measurement session, run in a single call on an offline GPU machine available
for minutes: each part in its own process with its own timeout, inside a total budget, the
most important first, every figure written as JSON under ``--out`` as soon as it exists.

Parts, in this order (``--parts`` picks some):

* ``env``: the device, torch, Triton, the inductor cache folder.
* ``reference_trm`` (then ``reference_hrm``): a training step of reasonbench (fast path, bf16
  autocast) against the reference code (its own ``forward_dtype`` bfloat16), paper presets,
  batch 768, alternating rounds (``reference_speed``); ``ratio`` = the reference's step time /
  reasonbench's. ``reference_trm_compiled`` (then ``reference_hrm_compiled``): the same with
  reasonbench's repeated block compiled; its warm-up round holds the compile time (cold cache).
* ``bench``: ``reasonbench bench --bf16`` (fast path) for TRM and HRM on Sudoku, paper presets:
  training throughput and MFU, and evaluation throughput (all 16 segments) at batch 2048 on
  the generated test split.
* ``bench_compiled``: the same with ``--compile``; its training graphs come from the cache the
  compiled reference part filled (the second run of the same shapes), its evaluation graphs
  are new.

Prepare the bundle where packages and CPU time are cheap (it needs the two reference checkouts):

    python -m reasonbench_benchmarks.gpu_session --prepare .gpu --trm-ref TRM_CHECKOUT --hrm-ref HRM_CHECKOUT

It holds the wheels the GPU machine lacks (``whl/``), the Sudoku data cache (``data/``, the
recipe in ``manifest.json``), the reference code's ``models/`` folders (``ref/``) and the
commit. On the GPU machine, from the repository root, with the bundle copied beside it:

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_session.py --bundle .gpu --out OUT --budget 540

(it installs the wheels and the project in the system's temporary folder first).
``--smoke``: the same parts on the CPU with the smoke presets and a few steps (the test).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what reasonbench and the reference code need beyond the GPU image's packages (../shared/gpu.md)
WHEELS = ["jsonargparse", "docstring-parser", "typeshed-client", "torchsde", "trampoline", "jsonschema",
          "jsonschema-specifications", "referencing", "rpds-py", "jsonschema-rs",
          "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "safetensors"]  # every run writes final.safetensors (huggingface_hub: only for hf:// paths, not needed here)
# generated Sudokus (the paper preset reads the Hub's data set, which an offline machine lacks,
# and its hard-puzzle generator would take hours) that build in about a minute on 2 cores;
# every part passes the recipe, so all find the same cache file
TASK_OPTIONS = ["--task.path", "null", "--task.generator", "blanks", "--task.num_blanks", "50",
                "--task.num_test", "4096", "--task.augmentations", "2"]
# in order of importance: a part the budget cannot fit is skipped, the ones before it are kept
PARTS = ["env", "reference_trm", "reference_trm_compiled", "bench", "bench_compiled", "reference_hrm",
         "reference_hrm_compiled"]


def _log(message: str) -> None:
    print(f"[gpu_session {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _source_fingerprint(paths: list[str]) -> str:
    """sha256 over the named source files (path and content): whether the code measured is the
    code of the manifest's commit, where no git is (the GPU machine gets no .git)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        file = ROOT / path
        digest.update(path.encode() + b"\0" + (file.read_bytes() if file.is_file() else b"<missing>") + b"\0")
    return digest.hexdigest()


# --- preparing the bundle (a CPU machine with package access) ------------------------------------
def prepare(bundle: Path, trm_ref: Path, hrm_ref: Path, python_version: str = "3.12") -> None:
    from importlib.metadata import PackageNotFoundError, version

    bundle.mkdir(parents=True, exist_ok=True)
    wheels = bundle / "whl"
    pins = []
    for name in WHEELS:  # the versions this checkout is tested with
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    have = {p.name.split("-")[0].lower() + "==" + p.name.split("-")[1] for p in wheels.glob("*.whl")}
    if {pin.replace("-", "_").lower() for pin in pins} <= have and len(have) == len(pins):
        _log(f"the {len(pins)} wheels are there already")
    else:
        shutil.rmtree(wheels, ignore_errors=True)
        platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                     for a in ("--platform", p)]
        _log(f"downloading {len(pins)} wheels for Python {python_version}")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(wheels),
                        *pins], check=True)
    _log("building the Sudoku data cache")
    env = {**os.environ, "REASONBENCH_DATA_CACHE": str((bundle / "data").resolve())}
    subprocess.run([sys.executable, "-m", "reasonbench", "data", "build", "--task", "sudoku", "--preset", "paper",
                    *TASK_OPTIONS], check=True, env=env)
    for name, source in (("trm", trm_ref), ("hrm", hrm_ref)):
        target = bundle / "ref" / name / "models"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source / "models", target, ignore=shutil.ignore_patterns("__pycache__"))
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sources = git("ls-files", "reasonbench", "plugins", "benchmarks", "pyproject.toml").splitlines()
    sources = [p for p in sources if p.endswith((".py", ".yaml", ".json", ".toml"))]
    manifest = {"git_commit": git("rev-parse", "HEAD") or None,
                "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", *sources)),
                "sources": sources, "source_fingerprint": _source_fingerprint(sources), "task_options": TASK_OPTIONS,
                "wheels": sorted(p.name for p in wheels.glob("*.whl")),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    _log(f"bundle {bundle}: {size / 2**20:.1f} MiB (copy it whole beside the working tree)")


# --- running the session --------------------------------------------------------------------------
def _install(bundle: Path) -> dict[str, str]:
    """The environment the parts run in: the bundle's wheels and the project installed in the
    temporary folder where the interpreter lacks them (the GPU image), else this one as it is."""
    env = dict(os.environ)
    if importlib.util.find_spec("jsonargparse") and importlib.util.find_spec("reasonbench_plugins"):
        return env
    site, project = Path(tempfile.gettempdir()) / "reasonbench_site", Path(tempfile.gettempdir()) / "reasonbench_project"
    wheels = sorted(str(p) for p in (bundle / "whl").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade"]
    if wheels:
        subprocess.run([*pip, "--target", str(site), *wheels], check=True)
    subprocess.run([*pip, "--no-build-isolation", "--target", str(project), str(ROOT)], check=True, env=env)
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


ENV_PROBE = """
import json, os, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count)
try:
    import triton
    info["triton"] = triton.__version__
except ImportError:
    info["triton"] = None
from reasonbench.model.fastpath import configure_compile_cache
info["inductor_cache"] = configure_compile_cache()
print(json.dumps(info))
"""


def _commands(args: argparse.Namespace, out: Path, refs: dict[str, Path]) -> dict[str, tuple[list[str], int]]:
    """Each part's command and its own timeout (seconds)."""
    py = [sys.executable]
    task = args.task_options
    if args.smoke:
        device, preset = "cpu", "smoke"
        ref_steps, bench_steps = ["--steps", "2", "--rounds", "1"], ["--steps", "1", "--warmup", "1", "--eval-batches", "1",
                                                                      "--flops-examples", "1", "--no-isolate"]
    else:
        device, preset = "cuda", "paper"
        ref_steps = ["--steps", "10", "--rounds", "4"]
        bench_steps = ["--steps", "10", "--warmup", "3", "--eval-batches", "2", "--eval-batch-size", "2048",
                       "--flops-examples", "1"]
    commands: dict[str, tuple[list[str], int]] = {"env": ([*py, "-c", ENV_PROBE], 60)}
    for model in ("trm", "hrm"):
        base = [*py, "-m", "reasonbench_benchmarks.reference_speed", "--model", model, "--reference", str(refs[model]),
                "--task", "sudoku", "--preset", preset, "--device", device, "--bf16", *ref_steps, *task]
        commands[f"reference_{model}"] = ([*base, "--out", str(out / f"reference_{model}.json")], 150)
        commands[f"reference_{model}_compiled"] = ([*base, "--compile", "--out",
                                                   str(out / f"reference_{model}_compiled.json")], 240)
    bench = [*py, "-m", "reasonbench", "bench", "--models", "trm,hrm", "--tasks", "sudoku", "--preset", preset,
             "--device", device, "--bf16", *bench_steps, *task]
    commands["bench"] = ([*bench, "--out", str(out / "bench.json")], 200)
    commands["bench_compiled"] = ([*bench, "--compile", "--out", str(out / "bench_compiled.json")], 300)
    return commands


def _fill_commit(path: Path, commit: str | None) -> None:
    """Name the commit in a part's JSON where git was not there to (the GPU machine has no .git)."""
    if not commit or not path.is_file():
        return
    data = json.loads(path.read_text())
    if not data.get("git_commit"):
        data["git_commit"], data["git_commit_source"] = commit, "bundle manifest"
        path.write_text(json.dumps(data, indent=2) + "\n")


def run_session(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(args.bundle) if args.bundle else None
    manifest = json.loads((bundle / "manifest.json").read_text()) if bundle and (bundle / "manifest.json").is_file() else {}
    args.task_options = [] if args.smoke else manifest.get("task_options", TASK_OPTIONS)
    refs = {name: Path(given or (bundle / "ref" / name if bundle else Path(tempfile.gettempdir()) / f"{name}_ref")).resolve()
            for name, given in (("trm", args.trm_ref), ("hrm", args.hrm_ref))}
    env = _install(bundle) if bundle else dict(os.environ)
    if bundle and (bundle / "data").is_dir():
        env["REASONBENCH_DATA_CACHE"] = str((bundle / "data").resolve())
    commit = manifest.get("git_commit")
    if commit and (manifest.get("git_dirty") or _source_fingerprint(manifest.get("sources", [])) !=
                   manifest.get("source_fingerprint")):
        commit += "+changes"  # the code measured is not that commit's: say so rather than name it
    if commit:
        env["REASONBENCH_GIT_COMMIT"] = commit
    env.setdefault("PYTHONUNBUFFERED", "1")
    commands = _commands(args, out, refs)
    wanted = args.parts.split(",") if args.parts else PARTS
    summary = {"format": "reasonbench-gpu-session", "smoke": args.smoke, "budget_seconds": args.budget,
               "manifest": manifest, "parts": []}
    log = (out / "log.txt").open("w")
    for name in wanted:
        command, own = commands[name]
        left = deadline - time.monotonic()
        if left < 20:
            summary["parts"].append({"name": name, "status": "skipped", "reason": "budget spent"})
            continue
        timeout = min(own * (3 if args.smoke else 1), left - 5)  # the CPU is slower
        _log(f"{name} (timeout {timeout:.0f} s): {' '.join(command[:6])} ...")
        log.write(f"\n===== {name}: {' '.join(command)}\n")
        log.flush()
        t0 = time.monotonic()
        try:
            proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            status = "timed out"
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        seconds = round(time.monotonic() - t0, 1)
        log.write(stdout[-20000:] + ("\n--- stderr\n" + stderr[-20000:] if stderr.strip() else ""))
        log.flush()
        part = {"name": name, "status": status, "seconds": seconds, "timeout": round(timeout),
                "tail": (stdout.strip().splitlines() or [""])[-3:]}
        if status != "ok":
            part["stderr_tail"] = stderr.strip().splitlines()[-15:]
        if name == "env" and status == "ok":
            part["env"] = json.loads(stdout.strip().splitlines()[-1])
        result = out / f"{name}.json"
        _fill_commit(result, commit)
        if result.is_file():
            part["file"] = result.name
        summary["parts"].append(part)
        _log(f"{name}: {status} in {seconds} s")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.close()
    summary["seconds"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for part in summary["parts"]:  # the short table the call's output ends with
        print(f"{part['name']:24s} {part['status']:18s} {part.get('seconds', '-')!s:>7} s  "
              f"{(part.get('tail') or [''])[-1][:110]}")
    return 0 if all(p["status"] == "ok" for p in summary["parts"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", metavar="BUNDLE", help="build the bundle to copy to the GPU machine (wheels, data cache, references)")
    parser.add_argument("--bundle", help="the prepared bundle (run mode)")
    parser.add_argument("--out", default="gpu_session", help="folder for the JSON figures and the log")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all parts together")
    parser.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--trm-ref", help="TinyRecursiveModels checkout (default: the bundle's)")
    parser.add_argument("--hrm-ref", help="HRM checkout (default: the bundle's)")
    parser.add_argument("--smoke", action="store_true", help="the CPU, the smoke presets, a few steps")
    args = parser.parse_args(argv)
    if args.parts and set(args.parts.split(",")) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(set(args.parts.split(',')) - set(PARTS))}; choose from {PARTS}")
    if args.prepare:
        if not (args.trm_ref and args.hrm_ref):
            parser.error("--prepare needs --trm-ref and --hrm-ref (checkouts of the reference code)")
        prepare(Path(args.prepare), Path(args.trm_ref), Path(args.hrm_ref))
        return 0
    return run_session(args)


if __name__ == "__main__":
    sys.exit(main())
