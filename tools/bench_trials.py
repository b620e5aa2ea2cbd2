#!/usr/bin/env python3
"""Trials speed-up, side by side in one run: the same `emotion-perception trials` command in one process
(`--jobs 1`) and on `--jobs N` local worker processes, each into a new report folder; checks that both give the same
results.json numbers and prints the wall times, the speed-up, the machine's load, and a simulation of how the time
grows with workers from the measured cell times (the cells' seconds of the one-process run, longest first onto the
worker that is free first, as the executor hands them out, plus the run's fixed part: loading, preparing, workers).

    .venv/bin/python tools/bench_trials.py [--jobs 2] [--out runs/bench_trials] -- [trials options]

Default trials options: the acceptance form of issue 16 (CK+48, forest rows, clean and jaw box, 6 repeats).
It runs this checkout's code (PYTHONPATH is set to the repository root).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ["--data", "../shared/data/ck_plus_48", "--models", "forest", "--attacks", "clean,type_b",
           "--repeats", "6", "--protocol", "subject-kfold"]
TIMINGS = {"seconds", "train_seconds_mean", "test_seconds_mean", "cell_seconds"}


def trials(options: list[str], out: Path, jobs: int) -> float:
    """Wall seconds of one trials run into the new folder `out`."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "emotion_perception", "trials", *options, "--jobs", str(jobs),
                    "--out", str(out), "--quiet"], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def numbers(value: object) -> object:
    """results.json's by_protocol without the timings."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    return value


def job_seconds(results: dict) -> list[float]:
    """The seconds of each task of a run: per protocol, model and repeat, each poisoning attack alone and the
    test-time attacks together (as `trials.job_groups` makes them)."""
    sys.path.insert(0, str(REPO))
    from emotion_perception.experiments.trials import POISONING

    jobs: dict[tuple[str, str, int, str], float] = {}
    for protocol, models in results["by_protocol"].items():
        for model, attacks in models.items():
            for attack, row in attacks.items():
                if not isinstance(row, dict):
                    continue
                group = attack if attack in POISONING else ""
                for repeat, seconds in enumerate(row.get("cell_seconds") or []):
                    key = (protocol, model, repeat, group)
                    jobs[key] = jobs.get(key, 0.0) + (seconds or 0.0)
    return sorted(jobs.values(), reverse=True)


def makespan(tasks: list[float], workers: int) -> float:
    """Longest first onto the worker free first."""
    free = [0.0] * workers
    for seconds in tasks:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the second run (default 2)")
    parser.add_argument("--out", default="runs/bench_trials", help="folder for the two report folders")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the first, untimed one-repeat run that fills the landmark cache")
    parser.add_argument("trials", nargs="*", help="trials options after --, replacing the default ones")
    args = parser.parse_args()
    options = args.trials or DEFAULT
    out = (REPO / args.out).resolve()
    if not args.no_warmup:  # the attacked images' landmarks and the surrogate CNNs are cached for both runs
        repeats = [o if options[k - 1] != "--repeats" else "1" for k, o in enumerate(options)]
        trials(repeats, out / "warmup", 1)
    load_before = os.getloadavg()[0]
    one = trials(options, out / "jobs1", 1)
    many = trials(options, out / f"jobs{args.jobs}", args.jobs)
    load_after = os.getloadavg()[0]
    results = {name: json.loads((out / name / "results.json").read_text()) for name in ("jobs1", f"jobs{args.jobs}")}
    same = numbers(results["jobs1"]["by_protocol"]) == numbers(results[f"jobs{args.jobs}"]["by_protocol"])
    print(f"trials {' '.join(options)}")
    print(f"cores: {len(os.sched_getaffinity(0))}; 1-minute load average before / after: {load_before:.2f} / "
          f"{load_after:.2f} (this benchmark adds up to {args.jobs}; more means other work shared the cores)")
    for name, seconds in (("--jobs 1", one), (f"--jobs {args.jobs}", many)):
        print(f"{name:>9}: {seconds:7.1f} s wall")
    print(f"speed-up: {one / many:.2f}x; the same results.json numbers: {'yes' if same else 'NO'}")
    for protocol, models in results["jobs1"]["by_protocol"].items():
        for model, attacks in models.items():
            for attack, row in attacks.items():
                if not isinstance(row, dict) or "accuracy_mean" not in row:
                    continue
                other = results[f"jobs{args.jobs}"]["by_protocol"][protocol][model][attack]
                print(f"  {protocol} {model} {attack}: accuracy {row['accuracy_mean']!r} / {other['accuracy_mean']!r}")
    tasks = job_seconds(results["jobs1"])
    fixed = one - sum(tasks)
    print(f"one-process run: {len(tasks)} tasks, {sum(tasks):.1f} s of cells (longest {tasks[0]:.1f} s), "
          f"{fixed:.1f} s fixed (start, data, preparation, report)")
    print("simulated wall time from these cell times (fixed part + cells on W workers, no transfer or start cost):")
    for workers in (1, 2, 4, 8, 16, 32):
        wall = fixed + makespan(tasks, workers)
        print(f"  W={workers:>2}: {wall:7.1f} s  ({one / wall:.2f}x)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
