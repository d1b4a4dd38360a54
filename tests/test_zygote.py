"""The zygote that starts the tests' entry points: a forked launch behaves as a fresh one."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests import zygote
from tests.conftest import user_env

SCRIPT = """\
import os, sys
print("main" if __name__ == "__main__" else __name__, sys.argv[1:], os.getcwd())
print(os.environ.get("ADVFIT_PROBE"), sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
print("to stderr", file=sys.stderr)
if sys.argv[1:] == ["sleep"]:
    import time
    print("ready", flush=True)
    time.sleep(60)
sys.exit(int(os.environ.get("ADVFIT_PROBE_EXIT", "0")))
"""


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(SCRIPT)
    return path


def forked_env(**extra: str) -> dict[str, str]:
    return user_env(OMP_NUM_THREADS="1", **extra)


def test_a_forked_launch_reads_as_a_fresh_one(script, tmp_path, monkeypatch):
    monkeypatch.delenv("ADVFIT_TEST_FRESH", raising=False)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    argv = [sys.executable, str(script), "a b", "c"]
    env = forked_env(ADVFIT_PROBE="seen", ADVFIT_PROBE_EXIT="3")
    process = zygote.popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert isinstance(process, zygote.Forked)
    out, err = process.communicate(timeout=60)
    fresh = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
    assert (process.returncode, out, err) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert out.decode().splitlines() == [f"main ['a b', 'c'] {cwd}", "seen True"]
    assert process.returncode == 3 and err == b"to stderr\n"
    ran = zygote.run(argv, cwd=cwd, env=env, timeout=60)
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, out.decode(), err.decode())


def test_a_forked_launch_is_signalled_and_waited_as_a_process(script, tmp_path, monkeypatch):
    monkeypatch.delenv("ADVFIT_TEST_FRESH", raising=False)
    process = zygote.popen(
        [sys.executable, str(script), "sleep"],
        cwd=tmp_path,
        env=forked_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert isinstance(process, zygote.Forked)
    while process.stdout.readline().strip() != "ready":
        pass
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM


def test_launches_it_cannot_fork_start_fresh(script, tmp_path, monkeypatch):
    """Interpreter options, an environment that torch or Python read as they load, and
    ADVFIT_TEST_FRESH=1 start a fresh process."""
    monkeypatch.delenv("ADVFIT_TEST_FRESH", raising=False)
    argv = [sys.executable, str(script)]
    for launch, env in [
        ([sys.executable, "-X", "importtime", str(script)], forked_env()),
        (argv, user_env(OMP_NUM_THREADS="2")),
        (argv, forked_env(PYTHONHASHSEED="7")),
    ]:
        process = zygote.popen(launch, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
        assert isinstance(process, subprocess.Popen), launch
        assert process.wait(timeout=60) == 0
    monkeypatch.setenv("ADVFIT_TEST_FRESH", "1")
    process = zygote.popen(argv, cwd=tmp_path, env=forked_env(), stdout=subprocess.DEVNULL)
    assert isinstance(process, subprocess.Popen) and process.wait(timeout=60) == 0


def test_a_forked_launch_starts_with_lightning_imported(tmp_path, monkeypatch):
    """What the zygote saves: a forked launch finds torch and Lightning imported (a fresh
    one imports them, 4-5 s on 2 cores; BENCHMARKS.md, "The demo and the test suite")."""
    monkeypatch.delenv("ADVFIT_TEST_FRESH", raising=False)
    probe = tmp_path / "loaded.py"
    probe.write_text("import sys\nprint('pytorch_lightning' in sys.modules)\n")
    argv = [sys.executable, str(probe)]
    assert zygote.run(argv, cwd=tmp_path, env=forked_env(), timeout=120).stdout == "True\n"
    fresh = subprocess.run(argv, cwd=tmp_path, env=forked_env(), capture_output=True, text=True)
    assert fresh.stdout == "False\n"


def test_the_launch_benchmark_runs_at_toy_size(capsys):
    """`python -m benchmarks.launch` must not rot: a row per kind of launch, fresh and forked
    (the two that refuse at once; the import's row is the same code with 5 s more)."""
    from benchmarks import launch

    assert launch.main(["--repeats", "1", "--cases", "train", "evaluate"]) == 0
    rows = [line.split("|")[1:4] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0].strip() for row in rows] == [
        "train.py fold=7 (refused)",
        "evaluate.py run_dir=nowhere",
    ]
    assert all(float(cell.split()[0]) > 0 for row in rows for cell in row[1:])


def test_a_zygote_that_died_is_started_again(script, tmp_path, monkeypatch):
    monkeypatch.delenv("ADVFIT_TEST_FRESH", raising=False)
    argv = [sys.executable, str(script)]
    assert zygote.run(argv, cwd=tmp_path, env=forked_env(), timeout=120).returncode == 0
    first = zygote._ZYGOTE.process
    first.kill()
    first.wait()
    process = zygote.popen(argv, cwd=tmp_path, env=forked_env(), stdout=subprocess.DEVNULL)
    assert isinstance(process, zygote.Forked) and process.wait(timeout=60) == 0
    assert zygote._ZYGOTE.process is not first and zygote._ZYGOTE.process.poll() is None
