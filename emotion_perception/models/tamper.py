"""Is this face's picture to be trusted? Per face: which regions are covered (`models.visibility`) and whether the
pixels carry artefacts that cameras do not make: impulse noise (isolated pixel outliers) and the image-scaling
camouflage's lattice (outliers repeating with the period of the victim's resize). Each check compares a statistic
with its threshold (chosen on clean faces of every shared dataset); the face's tamper score is the largest ratio,
and it is flagged at 1.

What it cannot see, by design: gradient attacks at small budgets (FGSM/PGD at epsilon 0.01 change each pixel by
2 grey levels), Gaussian noise (it looks like a camera's own noise) and any change too small to stand out from a
camera's own noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.errors import ForestFileError
from emotion_perception.core.types import Face
from emotion_perception.models.visibility import VisibilityModel, default_visibility_path

# The pixel checks, by header key, and the reason each gives when it flags a face.
ARTEFACT_REASONS = {
    "noise": "pixel outliers (added impulse noise)",
    "lattice": "a lattice of altered pixels (image-scaling camouflage)",
}
LATTICE_MAX_PERIOD = 8  # the longest lattice period looked for, in pixels (a victim shrinking by up to 8x)


def lattice_peak(profile: np.ndarray) -> float:
    """How far the strongest short-period component (period <= LATTICE_MAX_PERIOD) of a 1-D profile stands above
    its typical spectral power: a few to ~20 for camera pictures, hundreds for a lattice."""
    n = len(profile)
    trend = cv2.blur(profile.reshape(1, -1), (9, 1), borderType=cv2.BORDER_REFLECT).ravel()
    power = np.abs(np.fft.rfft((profile - trend) * np.hanning(n))) ** 2
    return float(power[int(np.ceil(n / LATTICE_MAX_PERIOD)):].max() / (np.median(power[1:]) + 1e-9))


def pixel_statistics(gray: np.ndarray, face: Face) -> dict[str, float]:
    """The face region's pixel checks, from its residual against a 3x3 median:
    - "noise": its strongest outliers (99th percentile) against its ordinary fine detail (90th percentile of
      |pixel - a Gaussian blur of it|): about 1 for camera pictures, 3 and more for impulse noise;
    - "lattice": the periodic part of the residual's row and column means (`lattice_peak`, the smaller of the two):
      the camouflage alters the pixels the victim's resize reads, a lattice with the resize's period."""
    box = face.box
    pad = int(0.1 * max(box.width, box.height))
    region = gray[max(box.top - pad, 0): box.bottom + pad + 1, max(box.left - pad, 0): box.right + pad + 1]
    if min(region.shape) < 16:
        return dict.fromkeys(ARTEFACT_REASONS, 0.0)
    pixels = region.astype(np.float32)
    outliers = np.abs(pixels - cv2.medianBlur(region, 3).astype(np.float32))
    detail = np.abs(cv2.GaussianBlur(pixels, (0, 0), 2.0) - pixels)
    return {"noise": float(np.percentile(outliers, 99) / (np.percentile(detail, 90) + 1.0)),
            "lattice": min(lattice_peak(outliers.mean(axis=0)), lattice_peak(outliers.mean(axis=1)))}


@dataclass
class Assessment:
    """One face's checks: covered-probabilities per region, the pixel statistics, and the verdict (the regions
    found covered, whether the pixels carry artefacts)."""

    occlusion: dict[str, float]
    artefacts: dict[str, float]
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
    """The checks of faces: the visibility forest and the pixel checks' thresholds of its header."""

    def __init__(self, visibility: VisibilityModel, source: str = "the visibility model") -> None:
        self.visibility = visibility
        thresholds = visibility.header.get("artefact_thresholds")
        if not isinstance(thresholds, dict) or set(thresholds) != set(ARTEFACT_REASONS):
            raise ForestFileError(f"{source}: no thresholds for the pixel checks ({', '.join(ARTEFACT_REASONS)}): "
                                  "retrain it with `emotion-perception train visibility`")
        self.artefact_thresholds = {check: float(value) for check, value in thresholds.items()}

    @classmethod
    def load(cls, path: str | None = None) -> TamperCheck:
        """The check of the visibility model at `path` (default: the shipped one); ForestFileError names the file."""
        path = path or str(default_visibility_path())
        return cls(VisibilityModel.load(path), f"visibility model {path}")

    def assess(self, gray: np.ndarray, faces: Sequence[Face]) -> list[Assessment]:
        out = []
        for occlusion, face in zip(self.visibility.assess(gray, faces), faces):
            artefacts = pixel_statistics(gray, face)
            pixel_ratios = {ARTEFACT_REASONS[check]: value / self.artefact_thresholds[check]
                            for check, value in artefacts.items()}
            ratios = {**{f"{region} face covered": occlusion[region] / self.visibility.thresholds[region]
                         for region in occlusion}, **pixel_ratios}
            out.append(Assessment(occlusion, artefacts, max(ratios.values()),
                                  [reason for reason, r in ratios.items() if r >= 1.0],
                                  self.visibility.occluded(occlusion), max(pixel_ratios.values()) >= 1.0))
        return out
