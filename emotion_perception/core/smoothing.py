"""Steady labels on video: per followed face, an exponential moving average of the class scores over time, so
that the label does not flicker between frames of one expression.

A new frame weighs 1 - exp(-dt / time_constant), with dt the time between the face's frames (from their header
stamps): the average forgets at the same speed whatever the frame rate or the frames dropped. With `hysteresis` h
a face keeps its label until another class's averaged score beats it by h, so that two classes in a near tie do
not take turns. A face not seen for `forget_after` time constants (at least that many seconds), or whose stamps
run backwards (a replay looping), starts anew.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from emotion_perception.core.types import FacePrediction


@dataclass
class _Track:
    stamp: float
    scores: np.ndarray
    label: int


class ScoreSmoother:
    """Smooths the predictions of faces by their ids; `time_constant` 0 passes them through unchanged."""

    def __init__(self, time_constant: float, hysteresis: float = 0.0, forget_after: float = 10.0) -> None:
        if time_constant < 0 or not 0 <= hysteresis < 1:
            raise ValueError(f"need time constant >= 0 and hysteresis in [0, 1), got {time_constant}, {hysteresis}")
        self.time_constant = float(time_constant)
        self.hysteresis = float(hysteresis)
        self.forget_after = forget_after
        self._tracks: dict[Hashable, _Track] = {}

    def reset(self) -> None:
        self._tracks = {}

    def update(self, stamp: float, ids: Sequence[Hashable], predictions: list[FacePrediction]) -> list[FacePrediction]:
        """The predictions of one frame (stamp in seconds) with each face's scores averaged over its past frames."""
        if self.time_constant == 0 and self.hysteresis == 0:
            return predictions
        out = []
        for face_id, prediction in zip(ids, predictions):
            labels = list(prediction.scores)
            scores = np.array([prediction.scores[label] for label in labels])
            track = self._tracks.get(face_id)
            dt = None if track is None else stamp - track.stamp
            best = int(scores.argmax())
            if dt is not None and 0 <= dt <= self.horizon:
                if self.time_constant > 0:
                    scores = track.scores + (1.0 - np.exp(-dt / self.time_constant)) * (scores - track.scores)
                best = int(scores.argmax())
                if scores[best] < scores[track.label] + self.hysteresis:
                    best = track.label
            self._tracks[face_id] = _Track(stamp, scores, best)
            out.append(replace(prediction, label=labels[best], confidence=float(scores[best]),
                               scores=dict(zip(labels, scores.tolist()))))
        self._forget(stamp)
        return out

    @property
    def horizon(self) -> float:
        """Seconds a face's history is kept after its last frame."""
        return self.forget_after * max(self.time_constant, 1.0)

    def _forget(self, stamp: float) -> None:
        self._tracks = {i: t for i, t in self._tracks.items() if 0 <= stamp - t.stamp <= self.horizon}
