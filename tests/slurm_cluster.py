"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd (Debian's
``munge`` and ``slurm-wlm``) started on this machine with their own key, ports, state and logs
in a temporary folder, so that jobs really go through the controller and the node daemon.

``start()`` reuses a cluster that already answers (``sinfo`` shows an idle node) and stops
only what it started; it raises ``Unavailable`` with the reason when SLURM cannot start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged", "munge", "unmunge")
START_TIMEOUT = 30  # seconds for the daemons to come up and the node to turn idle


class Unavailable(Exception):
    """SLURM cannot run here; the message says why."""


@dataclass
class Cluster:
    conf: Path | None  # None: a cluster that was already up, with its own configuration
    folder: Path | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment the SLURM commands (and the jobs, which inherit it) need."""
        return {"SLURM_CONF": str(self.conf)} if self.conf else {}

    def log(self, name: str) -> str:
        path = self.folder / "log" / name if self.folder else None
        return path.read_text(errors="replace") if path and path.is_file() else ""

    def stop(self) -> None:
        """Cancel this cluster's jobs, stop the daemons started for it, remove its folder."""
        if not self.processes:
            return
        env = {**os.environ, **self.env}
        jobs = _output(["squeue", "--noheader", "--format=%A"], env).split()
        if jobs:  # this cluster is ours alone: every job in it came from the tests
            subprocess.run(["scancel", *jobs], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _output(["squeue", "--noheader"], env).strip():
            time.sleep(0.5)
        for proc in reversed(self.processes):  # slurmd, slurmctld, then munged
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _output(argv: list[str], env: dict[str, str], timeout: float = 20) -> str:
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


def _node_idle(env: dict[str, str]) -> bool:
    states = _output(["sinfo", "--noheader", "--Node", "--format=%T"], env).split()
    return any(state.rstrip("*~#") in ("idle", "mixed") for state in states)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_line() -> str:
    """This machine as slurmd sees it (``slurmd -C``): name, CPUs, sockets, cores, memory."""
    found = _output(["slurmd", "-C"], dict(os.environ)).splitlines()
    line = next((line for line in found if line.startswith("NodeName=")), None)
    if line is None:
        raise Unavailable("`slurmd -C` printed no node description")
    # NodeAddr: the short host name need not resolve; slurmd still finds itself by its name
    return f"{line} NodeAddr=127.0.0.1 State=UNKNOWN"


def _config(folder: Path, socket_path: Path) -> str:
    return "\n".join([
        "ClusterName=reasonbench-test",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={_free_port()}",  # own ports: a stale or real cluster on 6817/6818 is left alone
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        # cred_expire also delays a requeued job's restart (default 120 s)
        f"AuthInfo=socket={socket_path},cred_expire=10",
        "CredType=cred/munge",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        # no slurmdbd, so no sacct: the controller's completion log is the record of finished jobs
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={folder / 'log' / 'jobcomp.log'}",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=5",
        "MinJobAge=600",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=2,bf_interval=1",
        _node_line(),
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"


def _wait(check, processes: list[subprocess.Popen], folder: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            name = Path(dead[0].args[0]).name
            tail = " | ".join((folder / "log" / f"{name}.out").read_text(errors="replace").strip().splitlines()[-3:])
            raise Unavailable(f"{name} exited with code {dead[0].returncode}: {tail}")
        time.sleep(0.5)
    raise Unavailable(f"{what} not ready after {START_TIMEOUT} s")


def start() -> Cluster:
    """A running single-node cluster: one already up, else one started here."""
    # the daemons live in sbin, which a bare (non-login) PATH lacks
    extra = [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in os.environ.get("PATH", "").split(os.pathsep)]
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *extra])
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
    if _node_idle(dict(os.environ)):
        return Cluster(conf=None)
    if os.geteuid() != 0:
        raise Unavailable("starting slurmd and slurmctld needs root")
    folder = Path(tempfile.mkdtemp(prefix="reasonbench-slurm-"))
    cluster = Cluster(conf=folder / "slurm.conf", folder=folder)
    try:
        _start_daemons(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: Cluster) -> None:
    folder = cluster.folder
    for sub in ("munge", "state", "spool", "log"):
        (folder / sub).mkdir()
    # munged checks the permissions of its socket's folders: everyone may traverse, only root write
    for path in (folder, folder / "munge"):
        path.chmod(0o711)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = folder / "munge" / "munge.socket"
    cluster.conf.write_text(_config(folder, socket_path))
    env = {**os.environ, **cluster.env}

    def launch(argv: list[str]) -> None:
        out = open(folder / "log" / f"{Path(argv[0]).name}.out", "w")
        cluster.processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                  stdin=subprocess.DEVNULL, start_new_session=True))
        out.close()

    launch(["munged", "--foreground", f"--key-file={key}", f"--socket={socket_path}",
            f"--pid-file={folder / 'munge' / 'munged.pid'}", f"--seed-file={folder / 'munge' / 'munged.seed'}",
            f"--log-file={folder / 'log' / 'munged.log'}"])

    def munge_works() -> bool:
        if not socket_path.exists():
            return False
        cred = subprocess.run(["munge", "-n", "-S", str(socket_path)], capture_output=True, timeout=10)
        return cred.returncode == 0 and subprocess.run(["unmunge", "-S", str(socket_path)], input=cred.stdout,
                                                       capture_output=True, timeout=10).returncode == 0

    _wait(munge_works, cluster.processes, folder, "munged")
    launch(["slurmctld", "-D", "-f", str(cluster.conf)])
    launch(["slurmd", "-D", "-f", str(cluster.conf)])
    _wait(lambda: _node_idle(env), cluster.processes, folder, "the SLURM node")
