"""Training on a shared machine: threads and OpenMP's wait policy beside a busy neighbour.

One LeNet epoch (the hand loop of benchmarks.training_loop: 4,000 grayscale 32x32 images,
batch 32, Adam) timed alone and beside one busy neighbour (the same loop on one thread, run
without end in another process), for three settings:

- every core, OpenMP's default wait policy (a run's threads before advfit set them);
- every core, ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning);
- one thread.

Each measurement runs in its own process (OpenMP reads its policy when torch loads it) and
keeps the median of epochs 2-3; the settings are interleaved, ``--repeats`` rounds each.

    python -m benchmarks.shared_cores [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import spread

SHAPE = (1, 32, 32)
IMAGES = 4000


def epoch_seconds(threads: int) -> float:
    import torch

    from benchmarks.training_loop import data, hand_epoch

    torch.set_num_threads(threads)
    x, y = data(SHAPE, IMAGES)
    return hand_epoch(SHAPE, x, y)


def measure(threads: int, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.shared_cores", "--worker", str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def neighbour() -> subprocess.Popen:
    """A busy process: the same loop on one thread, without end."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.shared_cores", "--worker", "1", "--forever"],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--forever", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        while True:
            print(f"{epoch_seconds(args.worker):.4f}", flush=True)
            if not args.forever:
                return
    cores = len(os.sched_getaffinity(0))
    settings = {
        f"{cores} threads, default wait": (cores, None),
        f"{cores} threads, OMP_WAIT_POLICY=PASSIVE": (cores, "PASSIVE"),
        "1 thread": (1, None),
    }
    print(f"{cores} usable cores; seconds per epoch, median [range] of {args.repeats} rounds")
    for beside in ("alone", "beside one busy process"):
        busy = neighbour() if beside != "alone" else None
        if busy:
            time.sleep(5)  # the neighbour has loaded torch and is training
        times: dict[str, list[float]] = {name: [] for name in settings}
        try:
            for _ in range(args.repeats):
                for name, (threads, policy) in settings.items():
                    times[name].append(measure(threads, policy))
        finally:
            if busy:
                busy.kill()
                busy.wait()
        for name, seconds in times.items():
            print(f"{beside:>24}  {name:<36} {spread(seconds)}")
        fastest = min(statistics.median(s) for s in times.values())
        print(f"{'':>24}  (fastest median {fastest:.3f} s)")


if __name__ == "__main__":
    main()
