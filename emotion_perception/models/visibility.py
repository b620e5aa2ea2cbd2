"""Which parts of a face can be seen: per face, the probability that its upper part (brows, eyes) and its lower
part (nose, mouth, jaw) are covered, from statistics of those regions in the aligned face crop (texture, flat
and saturated patches, straight edges), read by a small flat forest trained on clean faces and faces with
synthetic occluders (`core.occlusion`; `experiments.visibility` trains it). A region counts as occluded above its
threshold, chosen on clean faces of every shared dataset so that about 1 % of them are flagged."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.errors import ForestFileError
from emotion_perception.core.types import Face
from emotion_perception.models.crops import CropSpec
from emotion_perception.models.forest import FlatForest, load_forest, save_forest

DEFAULT_VISIBILITY = "default_visibility.npz"
CROP = CropSpec("aligned", 48)
# Rows and columns of the 48 px aligned crop (eyes on row 19, chin at the bottom edge) that each region covers.
REGIONS: dict[str, tuple[slice, slice]] = {
    "upper": (slice(6, 26), slice(4, 44)),
    "lower": (slice(27, 47), slice(6, 42)),
}
# Windows whose statistics the forest reads: the two regions, and the eyes and the mouth on their own (a box over
# the eyes leaves the brows and forehead of the upper region in view).
WINDOWS: dict[str, tuple[slice, slice]] = {
    **REGIONS,
    "left_eye": (slice(13, 25), slice(8, 22)),
    "right_eye": (slice(13, 25), slice(26, 40)),
    "mouth": (slice(31, 45), slice(13, 35)),
}
# The forest's classes: which regions are covered.
CLASSES = ("none", "upper", "lower", "both")


def default_visibility_path() -> Path:
    return Path(str(resources.files("emotion_perception") / "models" / DEFAULT_VISIBILITY))


def region_statistics(crop: np.ndarray) -> np.ndarray:
    """Per window: contrast and texture relative to the whole crop, flat and saturated pixel shares, brightness
    offset, the strongest straight horizontal and vertical edges, smooth share; then the crop's own contrast and
    texture (8 per window + 2 numbers). OpenCV reductions, a few calls per window: the check's cost is mostly here."""
    pixels = crop.astype(np.float32)
    laplacian = np.abs(cv2.Laplacian(pixels, cv2.CV_32F))
    gx, gy = np.abs(cv2.Sobel(pixels, cv2.CV_32F, 1, 0)), np.abs(cv2.Sobel(pixels, cv2.CV_32F, 0, 1))
    crop_mean, crop_std = (float(v[0, 0]) for v in cv2.meanStdDev(pixels))
    spread, texture = crop_std + 1.0, cv2.mean(laplacian)[0] + 1.0
    saturated = ((crop <= 12) | (crop >= 243)).view(np.uint8)
    smooth = (laplacian < 4).view(np.uint8)
    out = []
    for rows, cols in WINDOWS.values():
        region = pixels[rows, cols]
        n = region.size
        mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(region))
        flat = (np.abs(region - np.median(region)) <= 2).view(np.uint8)
        row_edges, col_edges = gy[rows, cols].sum(axis=1), gx[rows, cols].sum(axis=0)
        out += [std / spread, cv2.mean(laplacian[rows, cols])[0] / texture, cv2.countNonZero(flat) / n,
                cv2.countNonZero(saturated[rows, cols]) / n, (mean - crop_mean) / spread,
                row_edges.max() / len(col_edges) / (row_edges.sum() / n + 1.0),
                col_edges.max() / len(row_edges) / (col_edges.sum() / n + 1.0),
                cv2.countNonZero(smooth[rows, cols]) / n]
    return np.array([*out, spread, texture])


class VisibilityModel:
    """Occlusion scores of faces: (n, 2) probabilities that the upper and the lower region are covered."""

    def __init__(self, forest: FlatForest, header: dict[str, Any]) -> None:
        self.forest, self.header = forest, header
        self.thresholds = {region: float(header["thresholds"][region]) for region in REGIONS}

    @classmethod
    def load(cls, path: str | Path | None = None) -> VisibilityModel:
        """The model of `path` (default: the shipped one); ForestFileError names a file that is not one."""
        path = path or default_visibility_path()
        forest, header = load_forest(path)
        thresholds = header.get("thresholds")
        if not isinstance(thresholds, dict) or not set(REGIONS) <= set(thresholds):
            raise ForestFileError(f"visibility model {path}: no region thresholds in its header (not a visibility "
                                  "model; `emotion-perception train visibility` makes one)")
        return cls(forest, header)

    def save(self, path: str | Path) -> None:
        save_forest(path, self.forest, self.header)

    def scores(self, crops: np.ndarray) -> np.ndarray:
        """(n, 2) covered-probabilities (upper, lower) of aligned 48 px crops."""
        if not len(crops):
            return np.zeros((0, 2))
        proba = self.forest.predict_proba(np.stack([region_statistics(crop) for crop in crops]))
        column = {label: proba[:, self.forest.classes.index(label)] for label in CLASSES}
        return np.stack([column["upper"] + column["both"], column["lower"] + column["both"]], axis=1)

    def assess(self, gray: np.ndarray, faces: Sequence[Face]) -> list[dict[str, float]]:
        """Per face {"upper": p, "lower": p}: how likely each region is covered."""
        scores = self.scores(CROP.crops(gray, faces))
        return [dict(zip(REGIONS, map(float, row))) for row in scores]

    def occluded(self, assessment: dict[str, float]) -> list[str]:
        """The regions of one face's assessment that count as covered (at or above their thresholds)."""
        return [region for region in REGIONS if assessment[region] >= self.thresholds[region]]
