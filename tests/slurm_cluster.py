"""A single-node SLURM cluster on this machine, for the tests of the SLURM launcher.

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``make install`` installs them on Debian as
root). :func:`start` returns the environment that reaches the cluster, or raises
:class:`Unavailable` saying why it cannot run here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

HOME = Path("/tmp/advfit-slurm")
CONF = HOME / "slurm.conf"


class Unavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


def _config(host: str) -> str:
    cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""ClusterName=advfit
SlurmctldHost={host}
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


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise Unavailable(f"{what} did not come up within {seconds:g} s (logs under {HOME})")


def start() -> dict[str, str]:
    """Start munged, slurmctld and slurmd when they are not running; return the environment
    (``SLURM_CONF``) under which sbatch, squeue and scontrol reach the cluster."""
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
    if not _running("munged"):
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
    if not _running("slurmctld"):
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(CONF)], check=True, env=env)
    if not _running("slurmd"):
        subprocess.run(["/usr/sbin/slurmd", "-f", str(CONF)], check=True, env=env)

    def idle() -> bool:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, env=env
        )
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")

    _wait(idle, 60, "the SLURM node")
    return env


if __name__ == "__main__":
    start()
    print(f"SLURM is up: export SLURM_CONF={CONF}")
