"""Is this face's picture to be trusted? Per face: which regions are covered (`models.visibility`) and whether the
pixels carry artefacts that cameras do not make (sensor-independent outliers: added noise, the image-scaling
camouflage's lattice of altered pixels). Each check compares a statistic with its threshold (chosen on clean
faces of every shared dataset); the face's tamper score is the largest ratio, and it is flagged at 1.

What it cannot see, by design: gradient attacks at small budgets (FGSM/PGD at epsilon 0.01 change each pixel by
2 grey levels) and any change too small to stand out from a camera's own noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.types import Face
from emotion_perception.models.visibility import VisibilityModel


def artefact_ratio(gray: np.ndarray, face: Face) -> float:
    """How much the face region's strongest pixel outliers (the 99th percentile of |pixel - its 3x3 median|) stand
    above its ordinary fine detail (the 90th percentile of |pixel - a Gaussian blur of it|): about 1 for camera
    pictures, 2-3 for the scaling camouflage and strong added noise."""
    box = face.box
    pad = int(0.1 * max(box.width, box.height))
    region = gray[max(box.top - pad, 0): box.bottom + pad + 1, max(box.left - pad, 0): box.right + pad + 1]
    if region.size < 16:
        return 0.0
    pixels = region.astype(np.float32)
    outliers = np.abs(pixels - cv2.medianBlur(region, 3).astype(np.float32))
    detail = np.abs(cv2.GaussianBlur(pixels, (0, 0), 2.0) - pixels)
    return float(np.percentile(outliers, 99) / (np.percentile(detail, 90) + 1.0))


@dataclass
class Assessment:
    """One face's checks: covered-probabilities per region, the artefact ratio, and the verdict (the regions found
    covered, whether the pixels carry artefacts)."""

    occlusion: dict[str, float]
    artefacts: float
    score: float
    reasons: list[str] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    artefacts_flagged: bool = False

    @property
    def flagged(self) -> bool:
        return self.score >= 1.0

    def to_json(self) -> dict[str, Any]:
        """The face's `occlusion` and `tampered` entries of emotion/detail."""
        return {"occlusion": {k: round(v, 3) for k, v in self.occlusion.items()},
                "tampered": {"score": round(self.score, 3), "flag": self.flagged, "reasons": self.reasons}}


class TamperCheck:
    """The checks of faces: the visibility forest and the artefact threshold of its header."""

    def __init__(self, visibility: VisibilityModel) -> None:
        self.visibility = visibility
        self.artefact_threshold = float(visibility.header["artefact_threshold"])

    @classmethod
    def load(cls, path: str | None = None) -> TamperCheck:
        return cls(VisibilityModel.load(path))

    def assess(self, gray: np.ndarray, faces: Sequence[Face]) -> list[Assessment]:
        out = []
        for occlusion, face in zip(self.visibility.assess(gray, faces), faces):
            ratios = {f"{region} face covered": occlusion[region] / self.visibility.thresholds[region]
                      for region in occlusion}
            artefacts = artefact_ratio(gray, face)
            ratios["pixel artefacts (added noise or image-scaling camouflage)"] = artefacts / self.artefact_threshold
            score = max(ratios.values())
            out.append(Assessment(occlusion, artefacts, score, [reason for reason, r in ratios.items() if r >= 1.0],
                                  self.visibility.occluded(occlusion), artefacts >= self.artefact_threshold))
        return out
