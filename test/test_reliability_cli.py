"""Reliability of the command line (bounded; the full figures: tools/reliability.py cli, docs/reliability.md):
bad inputs end with one line and exit status 2, without a traceback and without leaving a file; Ctrl-C and
SIGTERM at any moment leave nothing half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bag_data import make_dataset
from reliability_cli import (
    REPO,
    CliCase,
    cli_cases,
    leftovers,
    make_fixtures,
    run_case,
    run_case_subprocess,
    run_signal_trials,
)

from emotion_perception.core.errors import DatasetError, OutputError
from emotion_perception.data.datasets import load_folder


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    work = tmp_path_factory.mktemp("cli_cases")
    return work, make_fixtures(work)


def test_reliability_every_bad_input_ends_with_one_line_and_status_2(fixtures):
    work, files = fixtures
    cases = cli_cases(files, work / "out")
    assert len(cases) >= 60
    failures = {case.name: outcome.problems for case in cases if (outcome := run_case(case, work)).problems}
    assert failures == {}


@pytest.mark.parametrize("name", ["data truncated_pngs", "data binary_manifest", "train --out under_file",
                                  "--folds abc", "cache not a database"])
def test_reliability_bad_inputs_as_separate_processes(fixtures, name):
    """What a user sees, including what OpenCV or dlib would print themselves."""
    work, files = fixtures
    [case] = [c for c in cli_cases(files, work / "out") if c.name == name]
    outcome = run_case_subprocess(case, work)
    assert outcome.problems == [], outcome.stderr


def test_reliability_manifest_rows_outside_the_folder_are_refused(tmp_path):
    make_dataset(tmp_path / "data")
    for row in ("/etc/passwd", "../outside.png", "happy/../../outside.png"):
        (tmp_path / "data" / "manifest.csv").write_text(f"path,label\nhappy/full.png,happy\n{row},happy\n")
        with pytest.raises(DatasetError, match=r"line 3: path .* lies outside the dataset folder"):
            load_folder(tmp_path / "data")
    (tmp_path / "data" / "manifest.csv").write_text("path,label\nhappy/./full.png,happy\n")
    assert len(load_folder(tmp_path / "data")) == 1


def test_reliability_a_binary_manifest_is_a_dataset_error(tmp_path):
    (tmp_path / "manifest.csv").write_bytes(bytes(range(128, 256)))
    with pytest.raises(DatasetError, match="not a UTF-8 CSV text file"):
        load_folder(tmp_path)


def test_reliability_an_unwritable_output_is_refused_before_the_work(fixtures):
    """The evaluation does not run (nothing printed) when its --json cannot be written."""
    work, files = fixtures
    case = CliCase("json under a file", ["evaluate", "--data", str(files["faces"]), "--protocol", "paper",
                                         "--folds", "2", "--no-cache", "--quiet", "--json", f"{files['file']}/x.json"])
    outcome = run_case(case, work)
    assert outcome.problems == [] and "is not a folder" in outcome.error_lines[0]
    assert "accuracy" not in outcome.stderr


def test_reliability_an_output_that_fails_while_written_is_one_error(tmp_path):
    from emotion_perception.core.atomic import write_text_atomic

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write it"):
        write_text_atomic(tmp_path / "file" / "out.json", "{}")
    assert leftovers(tmp_path) == []


def test_reliability_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    from emotion_perception import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["train"]) == 130
    assert capsys.readouterr().err == "emotion-perception: interrupted\n"


SIGTERM_WHILE_WRITING = """
import os, signal, sys, time
real_replace = os.replace
def replace(source, target):  # the output is written, about to be renamed into place: SIGTERM arrives
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    real_replace(source, target)
os.replace = replace
from emotion_perception.cli import main
sys.exit(main(["calibrate", "--model", "forest", "--temperature", "1.5", "--out", "out/m.npz"]))
"""


def test_reliability_sigterm_while_the_output_is_written_leaves_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", SIGTERM_WHILE_WRITING], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "emotion-perception calibrate: terminated"
    assert leftovers(tmp_path) == [] and not (tmp_path / "out" / "m.npz").exists()


SIGNAL_WHILE_PYTHON_SHUTS_DOWN = """
import atexit, os, signal, sys, time
from emotion_perception.cli import main
which = getattr(signal, sys.argv[1])
atexit.register(lambda: (os.kill(os.getpid(), which), time.sleep(10)))
sys.argv[1:] = ["--help"]
sys.exit(main())
"""


@pytest.mark.parametrize("which", ["SIGINT", "SIGTERM"])
def test_reliability_a_signal_after_the_command_ends_the_process_without_a_traceback(tmp_path, which):
    """A signal while Python shuts down (joblib's exit handler joins its threads then) ends the process as by
    default: its own status, no KeyboardInterrupt traceback."""
    done = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_PYTHON_SHUTS_DOWN, which], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == -getattr(signal, which) and "Traceback" not in done.stderr, done.stderr

def test_reliability_signals_at_random_moments_leave_nothing_half_written(tmp_path):
    """Two moments per command (SIGINT and SIGTERM), one anywhere in its run and one while it writes."""
    outcomes = run_signal_trials(tmp_path, per_command=2, seed=1)
    assert len(outcomes) == 8
    assert {f"{o.command} {o.signal} at {o.delay:.2f} s": o.problems for o in outcomes if o.problems} == {}
