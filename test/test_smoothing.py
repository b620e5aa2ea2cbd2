"""Per-face score smoothing over time: flicker goes, real changes are followed, time comes from the stamps."""

import itertools

import numpy as np
import pytest

from emotion_perception.core.faces import FaceBox
from emotion_perception.core.smoothing import ScoreSmoother
from emotion_perception.core.types import FacePrediction

BOX = FaceBox(0, 0, 10, 10, 1.0, "detector")


def face(happy: float) -> FacePrediction:
    scores = {"happy": happy, "sadness": 1 - happy}
    label = max(scores, key=scores.get)
    return FacePrediction(BOX, np.zeros((68, 2)), label, scores[label], scores)


def labels(smoother: ScoreSmoother, happiness: list[float], fps: float, face_id: int = 1) -> list[str]:
    return [smoother.update(i / fps, [face_id], [face(h)])[0].label for i, h in enumerate(happiness)]


def flips(sequence: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(sequence))


def test_a_flickering_expression_gets_one_steady_label():
    noisy = [0.6, 0.45] * 60  # the model hesitates between two labels frame by frame, leaning to happy
    assert flips(labels(ScoreSmoother(0.0), noisy, 30)) == len(noisy) - 1
    assert flips(labels(ScoreSmoother(0.5), noisy, 30)) == 0


def test_a_real_change_is_followed_after_about_a_time_constant_at_any_frame_rate():
    for fps in (10, 30):
        sequence = labels(ScoreSmoother(0.5), [0.9] * (2 * fps) + [0.1] * (2 * fps), fps)
        switch = sequence.index("sadness", 2 * fps) - 2 * fps
        # 0.9 -> 0.1 crosses 0.5 after ln(2) time constants: ~0.35 s
        assert switch / fps == pytest.approx(0.5 * np.log(2), abs=1.5 / fps)
        assert sequence[-1] == "sadness"


def test_faces_are_smoothed_apart_and_forgotten_when_gone():
    smoother = ScoreSmoother(0.5, forget_after=4)
    smoother.update(0.0, [1, 2], [face(0.9), face(0.1)])
    both = smoother.update(0.033, [1, 2], [face(0.4), face(0.6)])
    assert [p.label for p in both] == ["happy", "sadness"]  # each keeps its own history
    again = smoother.update(5.0, [1], [face(0.2)])  # face 1 unseen for 10 time constants: starts anew
    assert again[0].scores["happy"] == pytest.approx(0.2)
    assert smoother.update(1.0, [1], [face(0.9)])[0].scores["happy"] == pytest.approx(0.9)  # stamps ran back


def test_hysteresis_keeps_a_label_through_a_near_tie_and_lets_a_clear_change_through():
    near_tie = [0.6] + [0.48, 0.53] * 30  # after a clear start, two classes in a near tie take turns
    assert flips(labels(ScoreSmoother(0.0), near_tie, 30)) > 50
    assert flips(labels(ScoreSmoother(0.0, hysteresis=0.1), near_tie, 30)) == 0
    clear = labels(ScoreSmoother(0.0, hysteresis=0.1), [0.6] * 5 + [0.3] * 5, 30)
    assert clear == ["happy"] * 5 + ["sadness"] * 5  # 0.7 beats 0.3 by more than 0.1: switched at once
