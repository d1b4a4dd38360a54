"""What starting an entry point costs the test suite: a fresh process against one forked from
the tests' zygote (``tests/zygote.py``), interleaved over ``--repeats`` rounds, one thread
(each pytest-xdist worker's share on 2 cores).

- ``import advfit.tasks``: a launch that trains or evaluates (torch, torchvision, Lightning);
- ``train.py fold=7``: a launch refused before it imports Lightning;
- ``evaluate.py run_dir=nowhere``: the same for evaluate.py.

    python -m benchmarks.launch --repeats 5
    python -m benchmarks.launch --cases train evaluate
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import zygote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cases", nargs="+", choices=["import", "train", "evaluate"],
        default=["import", "train", "evaluate"], help="which launches to time (default: all)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.py"
        probe.write_text("import advfit.tasks, advfit.data\n")
        every = {
            "import": ("import advfit.tasks", [sys.executable, str(probe)]),
            "train": ("train.py fold=7 (refused)", [
                sys.executable, str(zygote.ROOT / "train.py"), "fold=7"
            ]),
            "evaluate": ("evaluate.py run_dir=nowhere", [
                sys.executable, str(zygote.ROOT / "evaluate.py"), "run_dir=nowhere"
            ]),
        }  # fmt: skip
        cases = dict(every[key] for key in args.cases)
        zygote.run(every["import"][1], cwd=folder, env=env)  # the zygote is up
        seconds: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for name, command in cases.items():
                for mode in ("fresh", "forked"):
                    start = time.monotonic()
                    if mode == "fresh":
                        subprocess.run(command, cwd=folder, env=env, capture_output=True)
                    else:
                        zygote.run(command, cwd=folder, env=env)
                    seconds.setdefault((name, mode), []).append(time.monotonic() - start)
    print("| launch | fresh process, s | forked from the zygote, s |")
    print("| --- | --- | --- |")
    for name in cases:
        cells = [
            f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]"
            for v in (seconds[(name, "fresh")], seconds[(name, "forked")])
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
