"""The landmark emotion model: a feature set plus a flat RandomForest, saved as one safe `.npz` file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception import features
from emotion_perception.core.types import Face
from emotion_perception.models.calibration import temper
from emotion_perception.models.forest import FlatForest, load_forest, save_forest, train_forest

DEFAULT_MODEL = "default_forest.npz"
DEFAULT_MAX_FEATURES = "sqrt"


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("emotion_perception") / "models" / DEFAULT_MODEL))


class EmotionModel:
    """Landmarks (n, 68, 2) -> emotion class probabilities.

    With `mirror` set, each face is also scored as its left-right mirror image and the two
    probability vectors are averaged (the forest was trained on both).
    """

    def __init__(self, forest: FlatForest, feature_set: str, mirror: bool, header: dict[str, Any]):
        self.forest = forest
        self.feature_set = feature_set
        self.mirror = mirror
        self.header = header

    @property
    def labels(self) -> list[str]:
        return self.forest.classes

    @property
    def name(self) -> str:
        return str(self.header.get("name", "forest"))

    @classmethod
    def load(cls, path: str | Path | None = None) -> EmotionModel:
        forest, header = load_forest(path or default_model_path())
        return cls(forest, header["feature_set"], bool(header.get("mirror", False)), header)

    def save(self, path: str | Path) -> None:
        save_forest(path, self.forest, {**self.header, "feature_set": self.feature_set, "mirror": self.mirror})

    @property
    def needs_image(self) -> bool:
        return features.needs_image(self.feature_set)

    def predict_proba(self, gray: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """The `Classifier` protocol: probabilities of the faces of one grey image."""
        return self.predict_landmarks(np.stack([face.landmarks for face in faces]), [gray] * len(faces))

    def predict_landmarks(self, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """(n, 68, 2) or (68, 2) landmarks -> (n, n_classes) probabilities; columns follow `labels`.

        `grays`: each face's grey image, needed when `needs_image` (appearance feature sets).
        """
        if not self.mirror:
            return self.predict_features(features.compute(self.feature_set, landmarks, grays))
        return self.predict_features(*features.compute_with_mirrored(self.feature_set, landmarks, grays))

    @property
    def temperature(self) -> float:
        """The calibration temperature of the scores (1.0: as the forest votes; see `models.calibration`)."""
        return float(self.header.get("temperature", 1.0))

    def predict_features(self, x: np.ndarray, x_mirrored: np.ndarray | None = None) -> np.ndarray:
        """Probabilities from precomputed feature rows (and, for mirror models, their mirrored rows)."""
        if not self.mirror:
            return temper(self.forest.predict_proba(x), self.temperature)
        if x_mirrored is None:
            raise ValueError("a mirror model needs the mirrored feature rows too")
        proba = self.forest.predict_proba(np.vstack([x, x_mirrored]))
        return temper((proba[: len(x)] + proba[len(x):]) / 2, self.temperature)


def fit_model(
    landmarks: np.ndarray,
    labels: np.ndarray,
    feature_set: str,
    grays: Sequence[np.ndarray] | None = None,
    mirror: bool = True,
    n_estimators: int = 100,
    max_features: float | str = "sqrt",
    seed: int = 0,
    n_jobs: int = 1,
    header: dict[str, Any] | None = None,
) -> EmotionModel:
    """Train a forest on the faces' features (plus their mirror images when `mirror`)."""
    points = features.as_batch(landmarks)
    x = features.compute(feature_set, points, grays)
    mirrored = features.compute_mirrored(feature_set, points, grays) if mirror else None
    return fit_features(x, mirrored, labels, feature_set, n_estimators, max_features, seed, n_jobs, header)


def fit_features(
    x: np.ndarray,
    x_mirrored: np.ndarray | None,
    labels: np.ndarray,
    feature_set: str,
    n_estimators: int = 100,
    max_features: float | str = "sqrt",
    seed: int = 0,
    n_jobs: int = 1,
    header: dict[str, Any] | None = None,
) -> EmotionModel:
    """Train on precomputed feature rows; with `x_mirrored` the mirrored rows are added (same labels)."""
    y = np.asarray(labels).astype(str)
    if x_mirrored is not None:
        x, y = np.vstack([x, x_mirrored]), np.concatenate([y, y])
    forest = train_forest(x, y, n_estimators=n_estimators, max_features=max_features, seed=seed, n_jobs=n_jobs)
    meta = {
        "n_estimators": n_estimators, "max_features": max_features, "seed": seed,
        "n_train": len(labels), **(header or {}),
    }
    return EmotionModel(FlatForest.from_sklearn(forest), feature_set, x_mirrored is not None, meta)


@dataclass
class ForestSettings:
    """How a fresh forest is trained (the `train forest` command, each fold of `evaluate`, each trial)."""

    feature_set: str = features.DEFAULT_FEATURE_SET
    n_estimators: int = 100
    max_features: float | str = DEFAULT_MAX_FEATURES
    mirror: bool = True
    n_jobs: int = 2

    def fit(self, x: np.ndarray, x_mirrored: np.ndarray | None, labels: np.ndarray, seed: int,
            header: dict[str, Any] | None = None) -> EmotionModel:
        """A forest trained on feature rows (all holding a face), with their mirrored rows when `mirror`."""
        return fit_features(x, x_mirrored if self.mirror else None, labels, self.feature_set, self.n_estimators,
                            self.max_features, seed, self.n_jobs, header)
