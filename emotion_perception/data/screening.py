"""Training-data hygiene against poisoning (Type A: eye boxes on every training face of one class): the tamper
check over the training faces, and what a forest's training does with what it flags.

A face flagged for pixel artefacts is left out. A face whose flags are only covered regions keeps what can be seen:
the feature columns that read a covered region (`features.region_columns`) are replaced by those of a random
training face nothing flagged, so the covering teaches nothing (an eye box on every face of one class would
otherwise be learnt as that class's sign) while the visible part of the face still teaches its class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from emotion_perception import features
from emotion_perception.core.images import read_gray
from emotion_perception.core.types import Face
from emotion_perception.data.face_data import FeatureRows, LandmarkData
from emotion_perception.models.tamper import Assessment, TamperCheck
from emotion_perception.models.visibility import REGIONS


@dataclass
class Screening:
    """The tamper check's verdicts on a set of images (all False where no face was found)."""

    covered: dict[str, np.ndarray]  # region -> per image, whether the check finds it covered
    artefacts: np.ndarray  # per image, whether the check finds pixel artefacts

    @classmethod
    def of(cls, assessments: list[Assessment | None]) -> Screening:
        """From one assessment per image (None: no face)."""
        covered = {region: np.array([a is not None and region in a.covered for a in assessments], bool)
                   for region in REGIONS}
        return cls(covered, np.array([a is not None and a.artefacts_flagged for a in assessments], bool))

    @property
    def flagged(self) -> np.ndarray:
        """Per image, whether any check flags it."""
        return self.artefacts | np.any(list(self.covered.values()), axis=0)

    @property
    def repaired(self) -> np.ndarray:
        """Per image, whether training keeps it with its covered regions' columns replaced."""
        return self.flagged & ~self.artefacts

    def left_out(self, repairs: bool) -> np.ndarray:
        """Per image, whether training leaves it out: flagged for pixel artefacts when it `repairs` the covered
        faces (forests), else flagged at all (CNNs)."""
        return self.artefacts if repairs else self.flagged

    def at(self, index: np.ndarray) -> Screening:
        """The verdicts of the images at `index`."""
        return Screening({region: flags[index] for region, flags in self.covered.items()}, self.artefacts[index])

    def where(self, mask: np.ndarray, other: Screening) -> Screening:
        """These verdicts, except where `mask` is true: `other`'s (Type A: the poisoned images' own verdicts)."""
        return Screening({region: np.where(mask, other.covered[region], self.covered[region]) for region in REGIONS},
                         np.where(mask, other.artefacts, self.artefacts))

    def repair(self, rows: FeatureRows, feature_set: str, seed: int) -> FeatureRows:
        """`rows` of the same images (the training images) with each covered region's columns of the repaired
        images taken from a random one of them that nothing flagged and that has a row (mirrored rows from the same
        donor); rows without a face stay as they are. A copy; `rows` is not changed."""
        x = rows.x.copy()
        mirrored = None if rows.x_mirrored is None else rows.x_mirrored.copy()
        self._repair_in_place(x, mirrored, feature_set, seed)
        return FeatureRows(x, mirrored)

    def _repair_in_place(self, x: np.ndarray, mirrored: np.ndarray | None, feature_set: str, seed: int) -> None:
        """`repair` on arrays the caller owns (donors are never repaired, so they are read as they were)."""
        found = np.isfinite(x[:, 0])
        repaired, donors = self.repaired & found, np.flatnonzero(~self.flagged & found)
        if not repaired.any():
            return
        if not len(donors):
            raise ValueError("no unflagged training face to take the covered regions' features from")
        rng = np.random.default_rng(seed)
        for region in REGIONS:
            images = np.flatnonzero(self.covered[region] & repaired)
            block = np.ix_(images, features.region_columns(feature_set, region))
            picked = np.ix_(rng.choice(donors, len(images)), block[1].ravel())
            x[block] = x[picked]
            if mirrored is not None:
                mirrored[block] = mirrored[picked]

    def counts(self) -> dict[str, int]:
        """How many images are flagged, left out (artefacts) and repaired, per covered region."""
        return {"flagged": int(self.flagged.sum()), "left_out": int(self.artefacts.sum()),
                "repaired": int(self.repaired.sum()),
                **{f"{region}_covered": int(self.covered[region].sum()) for region in REGIONS}}


def training_rows(rows: FeatureRows, index: np.ndarray, screening: Screening | None, feature_set: str,
                  seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, mirrored rows) at `index` for a training: as they are, or repaired by `screening` (the verdicts of
    every image `rows` holds)."""
    x, mirrored = rows.at(index)  # copies (index is an array)
    if screening is not None:
        screening.at(index)._repair_in_place(x, mirrored, feature_set, seed)
    return x, mirrored


def screen(data: LandmarkData, check: TamperCheck, progress: bool = True) -> Screening:
    """The tamper check of every image of `data` whose face was found (covered regions, pixel artefacts)."""
    assessments: list[Assessment | None] = [None] * len(data.dataset)
    found = np.flatnonzero(data.extracted.found)
    for i in tqdm(found, desc=f"tamper check {data.dataset.name}", disable=not progress, leave=False):
        face = Face.from_landmarks(data.extracted.landmarks[i])
        assessments[i] = check.assess(read_gray(data.dataset.paths[i]), [face])[0]
    return Screening.of(assessments)
