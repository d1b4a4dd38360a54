"""A single-node SLURM cluster on this machine, for the tests of the SLURM launcher.

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``make install`` installs them on Debian as
root). :func:`start` returns the environment that reaches the cluster, or raises
:class:`Unavailable` saying why it cannot run here; :func:`stop` stops the daemons it started.

The cluster is the tests' own: its controller and node daemons listen on their own ports
(:data:`PORTS`) with their own state, pid and log files under :data:`HOME`, so a SLURM that
already runs on the machine is neither used nor disturbed, and only the daemons started here
are stopped. munged (authentication, not SLURM) is shared when one runs already.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HOME = Path("/tmp/advfit-slurm")
CONF = HOME / "slurm.conf"
#: slurmctld's and slurmd's ports: not SLURM's defaults (6817, 6818), which a cluster already
#: on the machine would hold.
PORTS = (6917, 6918)
#: The daemons :func:`start` started, one pid file per line: what :func:`stop` stops.
STARTED = HOME / "started"
MUNGE_PID = Path("/run/munge/munged.pid")


class Unavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


def _config(host: str) -> str:
    cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""ClusterName=advfit
SlurmctldHost={host}
SlurmctldPort={PORTS[0]}
SlurmdPort={PORTS[1]}
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
SlurmUser=root
SlurmdUser=root
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=5
InactiveLimit=0
StateSaveLocation={HOME}/state
SlurmdSpoolDir={HOME}/spool
SlurmctldPidFile={HOME}/slurmctld.pid
SlurmdPidFile={HOME}/slurmd.pid
SlurmctldLogFile={HOME}/slurmctld.log
SlurmdLogFile={HOME}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={max(512, memory_mb - 2048)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` when that process runs, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
        # A process that ended but was not yet reaped by its parent (a zombie) runs no more.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise Unavailable(f"{what} did not come up within {seconds:g} s (logs under {HOME})")


def _started(pid_file: Path) -> None:
    with STARTED.open("a") as f:
        f.write(f"{pid_file}\n")


def start() -> dict[str, str]:
    """Start munged when none runs, and this cluster's slurmctld and slurmd when they do not
    run; return the environment (``SLURM_CONF``) under which sbatch, squeue and scontrol
    reach this cluster."""
    if os.geteuid() != 0:
        raise Unavailable("starting SLURM needs root")
    for daemon in ("munged", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(daemon) is None and not Path(f"/usr/sbin/{daemon}").exists():
            raise Unavailable(
                f"{daemon} is not installed (Debian: apt-get install slurm-wlm munge)"
            )
    if not Path("/etc/munge/munge.key").is_file():
        raise Unavailable("/etc/munge/munge.key is missing (Debian's munge package creates it)")
    host = socket.gethostname().split(".")[0]
    env = {**os.environ, "SLURM_CONF": str(CONF)}
    for sub in ("state", "spool"):
        (HOME / sub).mkdir(parents=True, exist_ok=True)
    text = _config(host)
    if not CONF.is_file() or CONF.read_text() != text:
        CONF.write_text(text)
    munge_running = subprocess.run(["pgrep", "-x", "munged"], capture_output=True)
    if munge_running.returncode != 0:
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        _wait(lambda: _pid(MUNGE_PID) is not None, 20, "munged")
        _started(MUNGE_PID)
    for daemon in ("slurmctld", "slurmd"):
        pid_file = HOME / f"{daemon}.pid"
        if _pid(pid_file) is None:
            subprocess.run([f"/usr/sbin/{daemon}", "-f", str(CONF)], check=True, env=env)
            _wait(lambda f=pid_file: _pid(f) is not None, 30, daemon)
            _started(pid_file)

    def idle() -> bool:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, env=env
        )
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")

    _wait(idle, 60, "the SLURM node")
    return env


def stop() -> list[str]:
    """Stop the daemons :func:`start` started (slurmd, slurmctld, then munged), and only those;
    returns their pid files' names."""
    if not STARTED.is_file():
        return []
    stopped = []
    for line in reversed(STARTED.read_text().split()):
        pid_file = Path(line)
        pid = _pid(pid_file)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _pid(pid_file) == pid and time.monotonic() < deadline:
                time.sleep(0.2)
            stopped.append(pid_file.name)
    STARTED.unlink()
    return stopped


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["stop"]:
        print("stopped:", ", ".join(stop()) or "nothing (none was started here)")
    else:
        start()
        print(f"SLURM is up: export SLURM_CONF={CONF} (python -m tests.slurm_cluster stop)")
