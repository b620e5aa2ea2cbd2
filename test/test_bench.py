"""The bench command's inputs and argument checks (its timings are measured, never asserted)."""

import json
import subprocess
import sys

import numpy as np

from emotion_perception.cli import main
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.params import defaults
from emotion_perception.experiments.bench import moving_face_frames
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS


def test_moving_face_frames_hold_one_detectable_face_that_moves():
    frames = moving_face_frames(2.0)
    assert len(frames) == 60 and frames[0].shape == (480, 640, 3) and frames[0].dtype == np.uint8
    detector = FaceDetector(whole_image_fallback=False)
    first, later = (detector.detect(np.ascontiguousarray(frames[i][:, :, 1])) for i in (0, 5))
    assert len(first) == 1 and len(later) == 1
    assert 150 < first[0].width < 230 and later[0].left != first[0].left


def test_bad_bench_arguments_exit_non_zero(capsys):
    assert main(["bench", "--frames", "3"]) == 2
    assert main(["bench", "--face-scale", "5"]) == 2
    assert "too large" in capsys.readouterr().err


def test_bench_json_holds_every_figure_the_readme_reports(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "emotion_perception", "bench", "--frames", "12", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for key in ("fps_naive", "fps_optimised", "latency_ms_p50", "latency_ms_p99", "forest_ms_p50",
                "sklearn_forest_ms_p50", "cnn_ms_p50", "cnn_faces_per_s_batch64", "rule_ms_p50",
                "tamper_ms_p50", "visibility_ms_p50", "classify_ms_p50", "classify_checked_ms_p50"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["face_rate_optimised"] == 1.0 and figures["cnn_device"] == "cpu"
    node = defaults(LANDMARK_NODE_PARAMS)  # "optimised" is the node at its defaults
    assert [figures[k] for k in ("detect_every", "detect_tiles", "track_every", "detect_scale")] == [
        node[k] for k in ("detect_every", "detect_tiles", "track_every", "detect_scale")]
