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
from emotion_perception.models.balance import BALANCES, balancing_weights
from emotion_perception.models.calibration import temper
from emotion_perception.models.forest import FlatForest, load_forest, save_forest, train_balanced_forest, train_forest

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


@dataclass
class ForestSettings:
    """How a fresh forest is trained (the `train forest` command, each fold of `evaluate`, each trial)."""

    feature_set: str = features.DEFAULT_FEATURE_SET
    n_estimators: int = 100
    max_features: float | str = DEFAULT_MAX_FEATURES
    mirror: bool = True
    n_jobs: int = 2
    # "equal": balanced bagging, every training dataset (stratum) the same share and every class within it the
    # same (chosen by the leave-one-dataset-out protocol, docs/models.md); "none": scikit-learn's bootstrap.
    balance: str = "equal"
    bag_size: int = 12000

    @classmethod
    def like(cls, model: EmotionModel, n_jobs: int = 2) -> ForestSettings:
        """The settings `model` was trained with (models from before balancing used scikit-learn's bootstrap)."""
        h = model.header
        return cls(model.feature_set, int(h.get("n_estimators", 100)), h.get("max_features", DEFAULT_MAX_FEATURES),
                   model.mirror, n_jobs, h.get("balance", "none"), int(h.get("bag_size", 12000)))

    def check(self) -> None:
        """ValueError naming a setting out of range."""
        if self.n_estimators < 1 or self.bag_size < 1:
            raise ValueError(f"need at least one tree and one row per tree, got {self.n_estimators} and "
                             f"{self.bag_size}")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")

    def fit(self, x: np.ndarray, x_mirrored: np.ndarray | None, labels: np.ndarray, seed: int,
            header: dict[str, Any] | None = None, strata: np.ndarray | None = None) -> EmotionModel:
        """A forest trained on feature rows (all holding a face), with their mirrored rows when `mirror`;
        `strata` names each row's dataset for the balance (None: one dataset)."""
        self.check()
        y = np.asarray(labels).astype(str)
        weights = balancing_weights(y, strata, self.balance)
        if self.mirror:
            x, y, weights = np.vstack([x, x_mirrored]), np.concatenate([y, y]), np.concatenate([weights, weights])
        if self.balance == "none":
            forest = FlatForest.from_sklearn(train_forest(x, y, self.n_estimators, self.max_features, seed,
                                                          self.n_jobs))
        else:
            forest = train_balanced_forest(x, y, weights, self.n_estimators, self.bag_size, self.max_features, seed,
                                           self.n_jobs)
        meta = {"n_estimators": self.n_estimators, "max_features": self.max_features, "balance": self.balance,
                "bag_size": self.bag_size, "seed": seed, "n_train": len(labels), **(header or {})}
        return EmotionModel(forest, self.feature_set, self.mirror, meta)
