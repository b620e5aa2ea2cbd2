"""The command line under hostile input: bad-input cases (each must end with exit status 2 and one error line,
without a traceback, leaving no file behind) and signals at random moments of long commands (nothing half
written may be left). Used by test/test_reliability_cli.py (bounded) and tools/reliability.py (full figures).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from bag_data import make_dataset
from face_images import astronaut_bgr

REPO = Path(__file__).resolve().parents[1]
PARTIAL_MARKS = (".partial", ".emotion-perception-probe-", "-journal", ".old-")


@dataclass
class CliCase:
    """One bad input: the arguments after `emotion-perception` and the exit status it must end with."""

    name: str
    argv: list[str]
    expect: int = 2


@dataclass
class CliOutcome:
    case: CliCase
    status: int | None  # None: an exception escaped main() (a traceback)
    stderr: str
    traceback: str = ""
    changed: list[str] = field(default_factory=list)  # files created, removed or modified under the work folder

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ": error: " in line]

    @property
    def problems(self) -> list[str]:
        """What is wrong with this outcome (empty when the case passed)."""
        found = []
        if self.status is None or "Traceback" in self.stderr:
            found.append(f"traceback: {(self.traceback or self.stderr).strip().splitlines()[-1:]}")
        elif self.status != self.case.expect:
            found.append(f"exit status {self.status}, expected {self.case.expect}")
        if self.status == 2 and (len(self.error_lines) != 1 or not self.stderr.strip().endswith(
                self.error_lines[0] if self.error_lines else "\0")):
            found.append(f"not one error line at the end: {self.stderr.strip()!r}")
        if self.changed:
            found.append(f"left behind or changed: {self.changed}")
        return found


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file and folder under `root` (except those under `skip`)."""
    found = {}
    for path in root.rglob("*"):
        if any(path.is_relative_to(s) for s in skip):
            continue
        with contextlib.suppress(OSError):
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return found


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# --- the cases ---------------------------------------------------------------------------------------------


def write_manifest(folder: Path, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def make_fixtures(root: Path) -> dict[str, Path]:
    """Input files for the cases under root/in: a good dataset, broken datasets, models, caches."""
    base = root / "in"
    faces = make_dataset(base / "faces")
    one = base / "one.png"
    cv2.imwrite(str(one), astronaut_bgr())
    good_row = "happy/full.png,happy\n"
    f: dict[str, Path] = {"faces": faces, "one": one}
    f["not_dir"] = one
    f["empty_dir"] = base / "empty"
    f["empty_dir"].mkdir()
    f["binary_manifest"] = write_manifest(base / "binary", bytes(np.random.default_rng(1).integers(0, 256, 300,
                                                                                                 np.uint8)))
    f["utf16_manifest"] = write_manifest(base / "utf16", ("path,label\n" + good_row).encode("utf-16"))
    f["nul_manifest"] = write_manifest(base / "nul", "path,label\nhappy/\0full.png,happy\n")
    f["no_columns"] = write_manifest(base / "nocolumns", "file,emotion\nx.png,happy\n")
    f["short_row"] = write_manifest(base / "short", "path,label,subject\nhappy/full.png,happy\n")
    f["long_row"] = write_manifest(base / "long", "path,label\nhappy/full.png,happy,extra\n")
    f["absolute"] = write_manifest(base / "absolute", "path,label\n/etc/passwd,happy\n")
    f["dotdot"] = write_manifest(base / "dotdot", "path,label\n../one.png,happy\n")
    f["deep_dotdot"] = write_manifest(base / "deepdotdot", "path,label\nhappy/../../one.png,happy\n")
    f["missing_file"] = write_manifest(base / "missing", "path,label\nhappy/none.png,happy\n")
    f["bad_label"] = write_manifest(base / "badlabel", "path,label\nx.png,joy\n")
    (base / "badlabel" / "x.png").write_bytes(one.read_bytes())
    f["empty_label"] = write_manifest(base / "emptylabel", "path,label\nx.png,\n")
    (base / "emptylabel" / "x.png").write_bytes(one.read_bytes())
    f["dir_row"] = write_manifest(base / "dirrow", "path,label\nhappy,happy\n")
    (base / "dirrow" / "happy").mkdir()
    f["empty_manifest"] = write_manifest(base / "emptymanifest", "")
    f["header_only"] = write_manifest(base / "headeronly", "path,label\n")
    for name, maker in (("empty_pngs", lambda p: p.write_bytes(b"")), ("text_pngs", lambda p: p.write_text("x")),
                        ("tiny_pngs", lambda p: cv2.imwrite(str(p), np.zeros((1, 1), np.uint8))),
                        ("truncated_pngs", lambda p: p.write_bytes(cv2.imencode(".png", astronaut_bgr())[1]
                                                                   .tobytes()[:500]))):
        for label in ("happy", "sadness"):
            for i in range(3):
                path = base / name / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                maker(path)
        f[name] = base / name
    f["unknown_class"] = base / "unknownclass"
    (f["unknown_class"] / "joy").mkdir(parents=True)
    (f["unknown_class"] / "joy" / "a.png").write_bytes(one.read_bytes())
    f["file"] = base / "regular_file"
    f["file"].write_text("not a folder")
    f["corrupt_npz"] = base / "corrupt.npz"
    f["corrupt_npz"].write_bytes(b"PK\x03\x04 broken")
    f["text_pt"] = base / "model.pt"
    f["text_pt"].write_text("not weights")
    f["random_npz"] = base / "random.npz"
    f["random_npz"].write_bytes(bytes(range(256)) * 8)
    f["garbage_dat"] = base / "landmarks.dat"
    f["garbage_dat"].write_bytes(b"\x00" * 1000)
    f["garbage_cache"] = base / "cache.sqlite"
    f["garbage_cache"].write_text("not a database")
    f["garbage_json"] = base / "evaluation.json"
    f["garbage_json"].write_text("{not json")
    f["wrong_json"] = base / "other.json"
    f["wrong_json"].write_text(json.dumps({"accuracy": 1.0}))
    f["not_a_bag"] = base / "notabag"
    f["not_a_bag"].mkdir()
    (f["not_a_bag"] / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}\n")
    f["existing_dir"] = base / "existing"
    f["existing_dir"].mkdir()
    return f


def cli_cases(f: dict[str, Path], out: Path) -> list[CliCase]:
    """At least 60 bad inputs over every sub-command; outputs would go under `out`."""
    faces, nc = str(f["faces"]), "--no-cache"
    m = str(out / "m.npz")
    unwritable = {"proc": "/proc/emotion/x", "sys": "/sys/x", "under_file": f"{f['file']}/x"}
    paper = ["--protocol", "paper", "--folds", "2", "--n-estimators", "5", nc, "--quiet"]
    cases = [CliCase(f"data {name}", ["train", "--data", str(f[name]), "--out", m, nc, "--quiet"]) for name in (
        "not_dir", "empty_dir", "binary_manifest", "utf16_manifest", "nul_manifest", "no_columns", "short_row",
        "long_row", "absolute", "dotdot", "deep_dotdot", "missing_file", "bad_label", "empty_label", "dir_row",
        "empty_manifest", "header_only", "unknown_class", "empty_pngs", "text_pngs", "truncated_pngs")]
    cases += [CliCase(f"data {name} (evaluate)", ["evaluate", "--data", str(f[name]), "--folds", "2", nc, "--quiet",
                                                  "--json", str(out / "e.json")])
              for name in ("empty_pngs", "text_pngs", "truncated_pngs", "absolute", "binary_manifest")]
    cases += [CliCase("data missing", ["train", "--data", str(out / "absent"), "--out", m]),
              CliCase("data split absent", ["train", "--data", f"{faces}@test", "--out", m, nc]),
              CliCase("data labels absent", ["train", "--data", f"{faces}:fear", "--out", m, nc]),
              CliCase("data (bag from-dataset)", ["bag", "from-dataset", str(f["binary_manifest"]), str(out / "b")]),
              CliCase("data (trials)", ["trials", "--data", str(f["dotdot"]), "--out", str(out / "t"), nc]),
              CliCase("data (extract)", ["extract", "--data", str(f["absolute"]), "--out", str(out / "x.csv"), nc]),
              CliCase("data (attack)", ["attack", "--attack", "jaw_box", "--data", str(f["binary_manifest"]),
                                        "--out", str(out / "a")]),
              CliCase("data (explain)", ["explain", "--model", "forest", "--data", str(f["empty_pngs"]), "--out",
                                         str(out / "x"), nc])]
    for where, path in unwritable.items():
        cases += [CliCase(f"train --out {where}", ["train", "--data", faces, "--out", f"{path}.npz", nc]),
                  CliCase(f"evaluate --json {where}", ["evaluate", "--data", faces, "--json", f"{path}.json", *paper]),
                  CliCase(f"evaluate --plot {where}", ["evaluate", "--data", faces, "--plot", f"{path}.png", *paper]),
                  CliCase(f"--cache {where}", ["train", "--data", faces, "--out", m, "--cache", f"{path}.sqlite"]),
                  CliCase(f"trials --out {where}", ["trials", "--data", faces, "--out", path, nc]),
                  CliCase(f"bag evaluate --out {where}", ["bag", "evaluate", str(f["not_a_bag"]), "--out", path])]
    cases += [
        CliCase("train --out a folder", ["train", "--data", faces, "--out", str(f["existing_dir"]), nc]),
        CliCase("evaluate --json a folder", ["evaluate", "--data", faces, "--json", str(f["existing_dir"]), *paper]),
        CliCase("evaluate --predictions a folder", ["evaluate", "--data", faces, "--predictions",
                                                    str(f["existing_dir"]), *paper]),
        CliCase("trials --out file", ["trials", "--data", faces, "--out", str(f["file"])]),
        CliCase("bag from-dataset OUT proc", ["bag", "from-dataset", faces, "/proc/emotion/bag"]),
        CliCase("bag from-dataset OUT exists", ["bag", "from-dataset", faces, str(f["existing_dir"])]),
        CliCase("extract --out proc", ["extract", "--data", faces, "--out", "/proc/x.csv", nc]),
        CliCase("explain --out under file", ["explain", "--model", "forest", "--data", faces, "--out",
                                             f"{f['file']}/x"]),
        CliCase("attack --out proc", ["attack", "--attack", "jaw_box", "--data", faces, "--out", "/proc/x"]),
        CliCase("attack --out inside --data", ["attack", "--attack", "jaw_box", "--data", faces, "--out",
                                               f"{faces}/attacked"]),
        CliCase("bench --json proc", ["bench", "--json", "/proc/x.json"]),
        CliCase("calibrate --out proc", ["calibrate", "--model", "forest", "--temperature", "1.5", "--out",
                                         "/proc/x.npz"]),
        CliCase("train cnn --out proc", ["train", "cnn", "--data", faces, "--out", "/proc/x.pt"]),
        CliCase("train cnn --checkpoints under file", ["train", "cnn", "--data", faces, "--out", str(out / "c.pt"),
                                                       "--checkpoints", f"{f['file']}/ck"]),
        CliCase("flicker --json under file", ["flicker", "--data", faces, "--json", f"{f['file']}/x.json"]),
        CliCase("cache not a database", ["train", "--data", faces, "--out", m, "--cache", str(f["garbage_cache"])]),
        CliCase("cache is a folder", ["train", "--data", faces, "--out", m, "--cache", str(f["existing_dir"])]),
        CliCase("predict corrupt model", ["predict", "--model", str(f["corrupt_npz"]), str(f["one"])]),
        CliCase("predict absent model", ["predict", "--model", str(out / "absent.npz"), str(f["one"])]),
        CliCase("predict text .pt", ["predict", "--model", str(f["text_pt"]), str(f["one"])]),
        CliCase("evaluate random .npz", ["evaluate", "--data", faces, "--model", str(f["random_npz"]), nc]),
        CliCase("predict garbage landmark model", ["predict", "--landmark-model", str(f["garbage_dat"]),
                                                   str(f["one"])]),
        CliCase("train absent landmark model", ["train", "--data", faces, "--out", m, nc, "--landmark-model",
                                                str(out / "absent.dat")]),
        CliCase("evaluate --model-kind mismatch", ["evaluate", "--data", faces, "--model", str(f["text_pt"]),
                                                   "--model-kind", "forest", nc]),
        CliCase("calibrate garbage json", ["calibrate", "--model", "forest", "--temperature-from",
                                           str(f["garbage_json"]), "--out", str(out / "c.npz")]),
        CliCase("calibrate wrong json", ["calibrate", "--model", "forest", "--temperature-from",
                                         str(f["wrong_json"]), "--out", str(out / "c.npz")]),
        CliCase("calibrate absent json", ["calibrate", "--model", "forest", "--temperature-from",
                                          str(out / "absent.json"), "--out", str(out / "c.npz")]),
        CliCase("bag evaluate absent bag", ["bag", "evaluate", str(out / "absent"), "--out", str(out / "r")]),
        CliCase("bag evaluate not a bag", ["bag", "evaluate", str(f["not_a_bag"]), "--out", str(out / "r")]),
        CliCase("bag evaluate a file", ["bag", "evaluate", str(f["one"]), "--out", str(out / "r")]),
        CliCase("bag evaluate bad attack", ["bag", "evaluate", str(f["not_a_bag"]), "--out", str(out / "r"),
                                            "--attack", "bogus"]),
        CliCase("bag evaluate bad attack-param", ["bag", "evaluate", str(f["not_a_bag"]), "--out",
                                                  str(out / "r"), "--attack-param", "steps=many"]),
        CliCase("bag evaluate epsilon", ["bag", "evaluate", str(f["not_a_bag"]), "--out", str(out / "r"),
                                         "--epsilon", "5"]),
        CliCase("bag from-dataset fps", ["bag", "from-dataset", faces, str(out / "b"), "--fps", "0"]),
        CliCase("--folds abc", ["evaluate", "--data", faces, "--folds", "abc"]),
        CliCase("--folds 1", ["evaluate", "--data", faces, "--folds", "1", nc]),
        CliCase("--repeats 0", ["evaluate", "--data", faces, "--repeats", "0", nc]),
        CliCase("--n-estimators 0", ["train", "--data", faces, "--out", m, "--n-estimators", "0", nc]),
        CliCase("--covered-estimators 0", ["train", "--data", faces, "--out", m, "--covered-estimators", "0", nc]),
        CliCase("--max-features 2", ["train", "--data", faces, "--out", m, "--max-features", "2"]),
        CliCase("--out not .npz", ["train", "--data", faces, "--out", str(out / "m.pkl"), nc]),
        CliCase("cross without --test-data", ["evaluate", "--data", faces, "--protocol", "cross"]),
        CliCase("unknown protocol", ["evaluate", "--data", faces, "--protocol", "bogus"]),
        CliCase("unknown command", ["bogus"]),
        CliCase("no command", []),
        CliCase("train cnn unknown arch", ["train", "cnn", "--arch", "bogus", "--data", faces, "--out", "c.pt"]),
        CliCase("trials unknown model", ["trials", "--data", faces, "--out", str(out / "t"), "--models", "bogus"]),
        CliCase("trials unknown attack", ["trials", "--data", faces, "--out", str(out / "t"), "--attacks", "bogus"]),
        CliCase("trials bad epsilons", ["trials", "--data", faces, "--out", str(out / "t"), "--epsilons", "abc"]),
        CliCase("attack unknown", ["attack", "--attack", "bogus", "--data", faces, "--out", str(out / "a")]),
        CliCase("extract neither images nor data", ["extract"]),
        CliCase("evaluate --test-data absent", ["evaluate", "--data", faces, "--protocol", "cross", "--test-data",
                                                str(out / "absent"), nc]),
        CliCase("explain --depth 0", ["explain", "--model", "forest", "--data", faces, "--out", str(out / "x"),
                                      "--depth", "0", nc]),
        CliCase("demo --frames 0", ["demo", "--frames", "0"]),
    ]
    return cases


@contextlib.contextmanager
def _cli_process_state(cache_home: Path) -> Iterator[None]:
    """The environment of one in-process run: a private cache folder; SIGTERM's handler restored afterwards."""
    handler = signal.getsignal(signal.SIGTERM)
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache_home)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


def run_case(case: CliCase, work: Path) -> CliOutcome:
    """Run one case in this process (as `emotion-perception ARGV` would), with what it changed under `work`."""
    from emotion_perception.cli import main

    cache_home = work / "xdg-cache"
    before = snapshot(work, (cache_home,))
    stderr, stdout = io.StringIO(), io.StringIO()
    status, trace = None, ""
    with _cli_process_state(cache_home), contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            status = main(case.argv)
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else 1
        except BaseException:  # what would be a traceback
            trace = traceback.format_exc()
    return CliOutcome(case, status, stderr.getvalue(), trace, changes(before, snapshot(work, (cache_home,))))


def run_case_subprocess(case: CliCase, work: Path) -> CliOutcome:
    """Run one case as its own `python -m emotion_perception` process (what a user sees, OpenCV's and dlib's own
    output included)."""
    cache_home = work / "xdg-cache"
    before = snapshot(work, (cache_home,))
    done = subprocess.run([sys.executable, "-m", "emotion_perception", *case.argv], cwd=work, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO),
                                                           XDG_CACHE_HOME=str(cache_home)))
    return CliOutcome(case, done.returncode, done.stderr, "", changes(before, snapshot(work, (cache_home,))))


def run_cli_cases(work: Path, progress: Callable[[CliOutcome], None] | None = None,
                  separate_processes: bool = False) -> list[CliOutcome]:
    """Every case of `cli_cases`, in this process (fast) or each as its own process."""
    fixtures = make_fixtures(work)
    outcomes = []
    for case in cli_cases(fixtures, work / "out"):
        outcome = (run_case_subprocess if separate_processes else run_case)(case, work)
        if progress:
            progress(outcome)
        outcomes.append(outcome)
    return outcomes


# --- signals -------------------------------------------------------------------------------------------------


def signal_commands(work: Path) -> dict[str, list[str]]:
    """The long commands signalled: train, evaluate, trials and bag evaluate on a small face folder (each writes
    its outputs under out/ and its own landmark cache, cache.sqlite, in the folder it runs in)."""
    faces = make_dataset(work / "in" / "faces")
    bag = work / "in" / "faces_bag"
    if not bag.exists():
        run_cli(["bag", "from-dataset", str(faces), str(bag), "--quiet"], work)
    cache = "cache.sqlite"
    return {
        "train": ["train", "--data", str(faces), "--out", "out/m.npz", "--cache", cache, "--quiet",
                  "--n-estimators", "20"],
        "evaluate": ["evaluate", "--data", str(faces), "--folds", "2", "--json", "out/e.json", "--plot", "out/e.png",
                     "--cache", cache, "--quiet", "--n-estimators", "20"],
        "trials": ["trials", "--data", str(faces), "--out", "out/trials", "--repeats", "2", "--folds", "2",
                   "--attacks", "clean,type_b", "--feature-sets", "centroid", "--n-estimators", "10", "--cache", cache,
                   "--quiet"],
        "bag evaluate": ["bag", "evaluate", str(bag), "--out", "out/bag_report", "--quiet"],
    }


def run_cli(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO)))


@dataclass
class SignalOutcome:
    command: str
    signal: str
    delay: float
    status: int
    stderr: str
    leftovers: list[str]
    broken_outputs: list[str]

    @property
    def problems(self) -> list[str]:
        found = []
        if "Traceback" in self.stderr:
            found.append("traceback: " + self.stderr.strip().splitlines()[-1])
        number = getattr(signal, self.signal)
        # 0: the command had finished; -number: it had finished and the interpreter was shutting down (Python
        # restores the default handlers then), so the signal ended the process itself
        if self.status not in (128 + number, 0, -number):
            found.append(f"exit status {self.status}, expected {128 + number} (0 or {-number} once it had finished)")
        if self.leftovers:
            found.append(f"left behind: {self.leftovers}")
        if self.broken_outputs:
            found.append(f"half-written outputs: {self.broken_outputs}")
        return found


def leftovers(root: Path) -> list[str]:
    """Temporary files of atomic writes, staging folders, probes and sqlite journals under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if any(m in p.name for m in PARTIAL_MARKS))


def broken_outputs(root: Path) -> list[str]:
    """Output files under `root` that do not load (JSON, npz, PNG)."""
    broken = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    [archive[k] for k in archive.files]
            elif path.suffix == ".png" and cv2.imread(str(path)) is None:
                raise ValueError("unreadable PNG")
        except (OSError, ValueError) as error:
            broken.append(f"{path.relative_to(root)} ({error})")
    return broken


def signal_trial(command: str, argv: list[str], work: Path, which: str, delay: float) -> SignalOutcome:
    """Run `argv` in a fresh folder under `work`, send SIGINT or SIGTERM after `delay` s, and inspect what is left."""
    folder = work / f"run-{command.replace(' ', '_')}-{which}-{delay:.3f}"
    folder.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-m", "emotion_perception", *argv], cwd=folder, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(getattr(signal, which))
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        stderr += "\n(still running 120 s after the signal: killed)"
    return SignalOutcome(command, which, delay, process.returncode, stderr, leftovers(folder),
                         broken_outputs(folder / "out") if (folder / "out").exists() else [])


def command_durations(commands: dict[str, list[str]], work: Path) -> dict[str, float]:
    """Seconds each command takes to the end here (the range the signal moments are drawn from)."""
    durations = {}
    for name, argv in commands.items():
        folder = work / f"full-{name.replace(' ', '_')}"
        folder.mkdir(parents=True)
        start = time.monotonic()
        done = run_cli(argv, folder)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed: {done.stderr}")
        durations[name] = time.monotonic() - start
    return durations


def run_signal_trials(work: Path, per_command: int, seed: int = 0,
                      progress: Callable[[SignalOutcome], None] | None = None) -> list[SignalOutcome]:
    """`per_command` signals per command, SIGINT and SIGTERM alternately: the even ones at a moment drawn uniformly
    over the command's run, the odd ones over its last quarter (where it writes its outputs)."""
    rng = random.Random(seed)
    commands = signal_commands(work)
    durations = command_durations(commands, work)
    outcomes = []
    for name, argv in commands.items():
        for k in range(per_command):
            start = 0.0 if k % 2 == 0 else 0.75 * durations[name]
            outcome = signal_trial(name, argv, work, ("SIGINT", "SIGTERM")[k % 2], rng.uniform(start, durations[name]))
            if progress:
                progress(outcome)
            outcomes.append(outcome)
    return outcomes
