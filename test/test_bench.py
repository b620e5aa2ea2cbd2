"""The bench command's inputs and argument checks (its timings are measured, never asserted)."""

import numpy as np

from emotion_perception.cli import main
from emotion_perception.commands.bench import moving_face_frames
from emotion_perception.faces import FaceDetector


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
