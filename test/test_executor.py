"""The executor: trial cells give the same numbers in this process, in local worker processes and on a Dask cluster
the test starts; a worker that dies mid-cell is retried or its cells reported, nothing half-written is left in
`cells/`, and a re-run resumes; CNN training in a worker is bit-identical to training here."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from face_images import shared_dataset
from test_trials import make_faces

from emotion_perception.experiments.executor import (
    FAULT_ENV,
    FAULT_ONCE_ENV,
    DaskExecutor,
    ExecutorSettings,
    InProcess,
    Task,
)
from emotion_perception.experiments.trials import train_surrogate
from emotion_perception.models.cnn_training import TrainSettings

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"seconds", "train_seconds_mean", "test_seconds_mean", "cell_seconds"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "emotion_perception", *args], capture_output=True, text=True,
                          timeout=900, env=environ)


def numbers(out: Path) -> dict:
    """results.json without the timings and the run's facts: every accuracy, CI, test, confusion and count."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(json.loads((out / "results.json").read_text())["by_protocol"])


def cell_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "cells").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return make_faces(tmp_path_factory.mktemp("executor_faces"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded workers on localhost, as `dask scheduler` / `dask worker` start them."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    logs = [open(tmp_path / f"dask{k}.log", "w") for k in range(3)]  # noqa: SIM115 - closed below
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", str(port), "--no-dashboard"], env=env, stdout=logs[0],
                                  stderr=subprocess.STDOUT)]
    processes += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                    "--no-dashboard", "--name", f"test-worker-{k}"], env=env, stdout=logs[k + 1],
                                   stderr=subprocess.STDOUT) for k in range(2)]
    try:
        from distributed import Client

        deadline = time.monotonic() + 180
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


# ------------------------------------------------------------------------------------------ same numbers


def test_ck48_forest_numbers_are_the_same_in_one_process_local_workers_and_a_cluster(tmp_path, dask_cluster):
    data = shared_dataset("ck_plus_48")
    common = ["trials", "--data", str(data), "--models", "forest", "--feature-sets", "centroid", "--attacks",
              "clean,type_b", "--repeats", "2", "--protocol", "subject-kfold", "--n-estimators", "20",
              "--cache", str(tmp_path / "lm.sqlite"), "--quiet"]
    runs = {}
    for name, where in (("one", ["--jobs", "1"]), ("jobs2", ["--jobs", "2"]), ("cluster", ["--cluster", dask_cluster])):
        out = tmp_path / name
        result = run_cli(*common, "--out", str(out), *where)
        assert result.returncode == 0, result.stderr
        runs[name] = numbers(out)
        meta = json.loads((out / "results.json").read_text())["meta"]
        assert meta["cells_computed"] == 4 and not meta["failed_cells"]
        if name == "cluster":  # every cell ran on one of the cluster's worker processes
            from distributed import Client

            with Client(dask_cluster, timeout="10s") as client:
                pids = {str(pid) for pid in client.run(os.getpid).values()}
            ran = {json.loads(p.read_text())["worker"].split(":")[1] for p in (out / "cells").rglob("*.json")}
            assert ran <= pids, (ran, pids)
    assert runs["one"] == runs["jobs2"] == runs["cluster"]
    clean = runs["one"]["subject-kfold"]["forest_centroid"]["clean"]
    assert len(clean["accuracy_repeats"]) == 2 and clean["accuracy_mean"] > 0.6


def test_every_attack_of_both_models_gives_the_same_numbers_in_workers(faces, tmp_path):
    """All attacks (the prepared data reaches the workers complete), the forest and the CNN."""
    common = ["trials", "--data", str(faces), "--models", "forest,cnn", "--feature-sets", "centroid",
              "--attacks", "clean,type_a_screened,type_b,mask,fgsm,scaling,noise,adaptive", "--repeats", "2",
              "--cnn-repeats", "1", "--adaptive-repeats", "1", "--n-estimators", "5", "--cnn-epochs", "1",
              "--surrogate-epochs", "1", "--epsilons", "0.05", "--noise-sigmas", "0.05", "--adaptive-images", "2",
              "--adaptive-queries", "4", "--quiet"]
    for name, jobs in (("one", "1"), ("two", "2")):  # separate caches: each run trains its own surrogate CNNs
        result = run_cli(*common, "--out", str(tmp_path / name), "--jobs", jobs,
                         "--cache", str(tmp_path / name / "cache" / "lm.sqlite"))
        assert result.returncode == 0, result.stderr
        meta = json.loads((tmp_path / name / "results.json").read_text())["meta"]
        assert meta["workers"] == int(jobs) and meta["surrogates"] == {
            "cached": 0, "trained": 5, "cache": str(tmp_path / name / "cache" / "cnn")}
    assert numbers(tmp_path / "one") == numbers(tmp_path / "two")


def test_cnn_training_in_a_worker_is_bit_identical_to_training_here():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (24, 48, 48), dtype=np.uint8)
    labels = np.array(["happy", "sadness"] * 12)
    groups = np.arange(24) // 2
    shared = (crops, labels, groups, ["happy", "sadness"])
    settings = TrainSettings(arch="small_resnet", input_size=48, crop="box", epochs=2, seed=3, progress=False,
                             device="cpu", batch_size=8)
    task = Task("surrogate-0", (0, np.arange(20), settings))
    here = next(InProcess(threads=1).run(train_surrogate, shared, [task])).value[0].state_dict()
    with DaskExecutor(jobs=1, threads=1) as pool:
        outcome = next(pool.run(train_surrogate, shared, [task]))
    there = outcome.value[0].state_dict()
    assert outcome.worker.split(":")[1] != str(os.getpid())  # it did run in another process
    assert here.keys() == there.keys()
    assert all(torch.equal(here[k], there[k]) for k in here)


# ------------------------------------------------------------------------------------------ lost workers


def test_a_worker_killed_mid_cell_is_replaced_and_the_cell_retried(faces, tmp_path):
    args = ["trials", "--data", str(faces), "--models", "forest", "--feature-sets", "centroid", "--attacks",
            "clean,type_b", "--repeats", "3", "--n-estimators", "5", "--cache", str(tmp_path / "lm.sqlite"),
            "--quiet"]
    reference = run_cli(*args, "--out", str(tmp_path / "ref"), "--jobs", "1")
    assert reference.returncode == 0, reference.stderr
    marker = tmp_path / "killed-once"
    result = run_cli(*args, "--out", str(tmp_path / "out"), "--jobs", "2",
                     env={FAULT_ENV: "/r001/", FAULT_ONCE_ENV: str(marker)})
    assert result.returncode == 0, result.stderr
    assert marker.exists()  # a worker did die in the middle of cell r001
    assert numbers(tmp_path / "out") == numbers(tmp_path / "ref")


def test_a_cell_that_always_kills_its_worker_is_reported_and_a_rerun_resumes(faces, tmp_path):
    args = ["trials", "--data", str(faces), "--models", "forest", "--feature-sets", "centroid", "--attacks",
            "clean,type_b", "--repeats", "3", "--n-estimators", "5", "--cache", str(tmp_path / "lm.sqlite"),
            "--out", str(tmp_path / "out"), "--quiet"]
    result = run_cli(*args, "--jobs", "2",
                     env={FAULT_ENV: "/r001/", "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    assert result.returncode == 1, result.stderr
    assert "2 cell(s) failed" in result.stderr.strip().splitlines()[-1]
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    failed = sorted(f["cell"] for f in summary["meta"]["failed_cells"])
    assert failed == ["subject-kfold/forest_centroid/clean/r001", "subject-kfold/forest_centroid/type_b/r001"]
    assert summary["results"]["forest_centroid"]["clean"]["repeats"] == 2  # the run finished with the others
    assert "Failed cells" in (tmp_path / "out" / "report.md").read_text()
    files = cell_files(tmp_path / "out")
    assert len(files) == 4 and all(p.name.startswith("r") and p.suffix == ".json" for p in files)
    assert all(json.loads(p.read_text())["version"] == 1 for p in files)  # nothing half-written
    again = run_cli(*args, "--jobs", "2")
    assert again.returncode == 0, again.stderr
    assert "2 cells computed, 4 reused" in again.stdout
    assert len(cell_files(tmp_path / "out")) == 6


def test_no_workers_are_started_when_every_cell_is_cached(faces, tmp_path):
    args = ["trials", "--data", str(faces), "--models", "forest", "--feature-sets", "centroid", "--attacks", "clean",
            "--repeats", "2", "--n-estimators", "5", "--cache", str(tmp_path / "lm.sqlite"),
            "--out", str(tmp_path / "out"), "--quiet"]
    assert run_cli(*args, "--jobs", "1").returncode == 0
    again = run_cli(*args, "--jobs", "2")
    assert again.returncode == 0 and "0 cells computed, 2 reused; this process" in again.stdout


def test_bad_executor_options_are_one_line_errors(faces, tmp_path):
    for extra, expected in ((["--jobs", "0"], "--jobs must be >= 1"),
                            (["--cluster", f"tcp://127.0.0.1:{free_port()}"], "cannot reach the Dask scheduler")):
        result = run_cli("trials", "--data", str(faces), "--out", str(tmp_path / "out"), "--attacks", "clean",
                         "--feature-sets", "centroid", "--repeats", "2", "--n-estimators", "5", "--quiet",
                         "--cache", str(tmp_path / "lm.sqlite"), *extra)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


def test_executor_settings_start_no_more_local_processes_than_tasks():
    assert isinstance(ExecutorSettings(jobs=4).make(tasks=1), InProcess)
    assert isinstance(ExecutorSettings(jobs=1).make(tasks=10), InProcess)


# ------------------------------------------------------------------------------------------ evaluate and bags


def test_evaluate_repeats_give_the_same_numbers_in_one_process_and_in_workers(tmp_path):
    yale = shared_dataset("yale_faces_expr")
    common = ["evaluate", "--data", str(yale), "--protocol", "subject-kfold", "--folds", "5", "--repeats", "3",
              "--n-estimators", "20", "--feature-set", "centroid", "--cache", str(tmp_path / "c.sqlite"), "--quiet"]
    reports = {}
    for jobs in ("1", "2"):
        result = run_cli(*common, "--jobs", jobs, "--json", str(tmp_path / f"{jobs}.json"))
        assert result.returncode == 0, result.stderr
        reports[jobs] = json.loads((tmp_path / f"{jobs}.json").read_text())
    assert reports["1"]["executor"] == "this process" and "2 local worker processes" in reports["2"]["executor"]
    for report in reports.values():
        del report["seconds"], report["executor"]
    assert reports["1"] == reports["2"]
    assert len(reports["1"]["accuracy_repeats"]) == 3 and len(set(reports["1"]["accuracy_repeats"])) > 1


def test_bag_evaluate_over_several_bags_gives_each_bag_its_own_report_as_one_bag_alone_does(tmp_path):
    from bag_data import make_dataset

    data = make_dataset(tmp_path / "faces")
    bags = [tmp_path / "bags" / name for name in ("first", "second")]
    bags[0].parent.mkdir()
    for k, bag in enumerate(bags):
        result = run_cli("bag", "from-dataset", str(data), str(bag), "--fps", str(10 + 20 * k), "--quiet")
        assert result.returncode == 0, result.stderr
    alone = tmp_path / "alone"
    result = run_cli("bag", "evaluate", str(bags[1]), "--out", str(alone), "--jobs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    both = tmp_path / "both"
    result = run_cli("bag", "evaluate", *map(str, bags), "--out", str(both), "--jobs", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in both.iterdir()) == ["first", "second"]
    assert all((both / b.name / "results_bag").is_dir() and (both / b.name / "report.md").is_file() for b in bags)

    def scores(folder: Path) -> dict:
        results = json.loads((folder / "results.json").read_text())
        return {k: results[k] for k in ("source", "accuracy", "confusion", "labels", "n", "n_no_face",
                                        "ground_truth_frames", "frames", "bad_frames")}
    assert scores(both / "second") == scores(alone)
    first = scores(both / "first")
    assert first["source"] == str(bags[0]) and first["accuracy"] is not None  # the same frames at another rate:
    del first["source"]  # the same answers
    assert first == {k: v for k, v in scores(alone).items() if k != "source"}
    clash = run_cli("bag", "evaluate", str(bags[0]), str(bags[0]), "--out", str(tmp_path / "clash"), "--quiet")
    assert clash.returncode == 2 and "same folder name" in clash.stderr
