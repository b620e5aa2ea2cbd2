"""`emotion-perception demo` end to end: real node processes on a private domain, the /emotion stream printed."""

import re
import subprocess
import sys


def demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", "demo", *args], capture_output=True,
                          text=True, timeout=300)


def test_demo_prints_happy_emotion_lines_with_face_id_confidence_and_latency():
    result = demo("--frames", "7", "--rate", "4")  # slow enough that a loaded machine drops no frame
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if re.match(r" *\d+  /emotion ", line)]
    assert len(lines) == 7, result.stdout
    pattern = re.compile(r"/emotion happy +face id \d+ +confidence (0\.\d\d|1\.00) +latency +\d+\.\d ms "
                         r"\(node \d+\.\d ms\) +truth happy")
    assert all(pattern.search(line) for line in lines), result.stdout
    assert "no face; nothing on /emotion" in result.stdout  # the bundled frame without a face
    assert "demo: 7 /emotion messages" in result.stdout


def test_demo_reports_a_node_that_cannot_start_in_one_line(tmp_path):
    result = demo("--model", str(tmp_path / "missing.npz"), "--timeout", "120")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "landmark_emotion_node exited with status 2" in lines[0], result.stderr
    assert "missing.npz" in lines[0]
    assert demo("--frames", "0").returncode == 2
