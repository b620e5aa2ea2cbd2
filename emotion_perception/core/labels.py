"""Emotion label vocabulary and the 3-class (positive/negative/neutral) view."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EMOTIONS: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "neutral", "sadness", "surprise",
)

VALENCE: dict[str, str] = {
    "happy": "positive",
    "surprise": "positive",
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "neutral": "neutral",
}

VALENCE_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


def to_valence(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """Map emotion labels to their 3-class valence (positive, negative, neutral)."""
    return np.array([VALENCE[str(label)] for label in labels], dtype=object)


def check_labels(labels: Sequence[str]) -> None:
    """Raise ValueError naming any label outside the known vocabulary."""
    unknown = sorted({str(label) for label in labels} - set(EMOTIONS))
    if unknown:
        raise ValueError(f"unknown emotion label(s) {unknown}; expected some of {list(EMOTIONS)}")
