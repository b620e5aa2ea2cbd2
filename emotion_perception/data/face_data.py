"""What each model reads of a dataset: the landmarks of its primary faces (from the landmark cache) with their
feature rows, and the CNN's face crops. Computed once per run and indexed by the experiments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from emotion_perception import features
from emotion_perception.core import occlusion
from emotion_perception.core.errors import ImageError
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.core.types import Face
from emotion_perception.data.datasets import FaceDataset
from emotion_perception.data.landmark_cache import (
    ExtractedLandmarks,
    LandmarkCache,
    LandmarkView,
    extract_dataset,
    landmarks_of_images,
)
from emotion_perception.models.crops import CropSpec
from emotion_perception.models.visibility import VisibilityModel


@dataclass
class FeatureRows:
    """Feature rows of every image (NaN where no face was found), and of the mirrored faces."""

    x: np.ndarray
    x_mirrored: np.ndarray | None

    @property
    def found(self) -> np.ndarray:
        """Rows that hold a face."""
        return np.isfinite(self.x[:, 0])

    def at(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(rows, mirrored rows or None) at `index`."""
        return self.x[index], None if self.x_mirrored is None else self.x_mirrored[index]


@dataclass
class LandmarkData:
    """A dataset with the landmarks of its primary faces."""

    dataset: FaceDataset
    extracted: ExtractedLandmarks

    def feature_rows(self, feature_set: str, mirror: bool) -> FeatureRows:
        """Features of all faces, computed once (re-reading the images for appearance sets); all NaN when no face
        was found."""
        found = np.flatnonzero(self.extracted.found)
        n_columns = len(features.feature_names(feature_set))
        x = np.full((len(self.dataset), n_columns), np.nan)
        mirrored = np.full_like(x, np.nan) if mirror else None
        if not len(found):
            return FeatureRows(x, mirrored)
        points = self.extracted.landmarks[found]
        grays = [read_gray(self.dataset.paths[i]) for i in found] if features.needs_image(feature_set) else None
        x[found] = features.compute(feature_set, points, grays)
        if mirrored is not None:
            mirrored[found] = features.compute_mirrored(feature_set, points, grays)
        return FeatureRows(x, mirrored)


def feature_rows_of(feature_set: str, view: LandmarkView, grays: Sequence[np.ndarray], mirror: bool) -> FeatureRows:
    """Feature rows (and mirrored rows) of the faces of `view`; NaN rows where no face was found."""
    index = np.flatnonzero(view.found)
    n_columns = len(features.feature_names(feature_set))
    x = np.full((len(grays), n_columns), np.nan)
    x_mirrored = np.full_like(x, np.nan) if mirror else None
    if len(index):
        images = [grays[i] for i in index] if features.needs_image(feature_set) else None
        if mirror:
            x[index], x_mirrored[index] = features.compute_with_mirrored(feature_set, view.landmarks[index], images)
        else:
            x[index] = features.compute(feature_set, view.landmarks[index], images)
    return FeatureRows(x, x_mirrored)


def occluded_rows(data: LandmarkData, feature_set: str, mirror: bool, analyzer: FaceAnalyzer,
                  cache: LandmarkCache | None, seed: int = 0, progress: bool = True) -> list[FeatureRows]:
    """Feature rows of every found face under each lower-face occluder (`core.occlusion.LOWER_KINDS`: one
    FeatureRows per kind, random shape and fill seeded per image and kind), as dlib re-reads the covered image; NaN
    where it finds no face. What the covered-face forest trains on (`ForestSettings.covered`)."""
    found = data.extracted.found
    out = []
    for k, kind in enumerate(occlusion.LOWER_KINDS):
        grays = [np.zeros((1, 1), np.uint8)] * len(data.dataset)
        for i in np.flatnonzero(found):
            grays[i] = occlusion.occlude(read_gray(data.dataset.paths[i]), data.extracted.landmarks[i], kind,
                                         np.random.default_rng([seed, int(i), k]))
        view = landmarks_of_images(grays, analyzer, cache, ~found, progress, f"{kind} faces {data.dataset.name}")
        out.append(feature_rows_of(feature_set, view, grays, mirror))
    return out


def lower_covered(data: LandmarkData, visibility: VisibilityModel) -> np.ndarray:
    """Per image, whether the visibility check finds its face's lower part covered (False where no face)."""
    flags = np.zeros(len(data.dataset), bool)
    for i in np.flatnonzero(data.extracted.found):
        face = Face.from_landmarks(data.extracted.landmarks[i])
        assessment = visibility.assess(read_gray(data.dataset.paths[i]), [face])[0]
        flags[i] = "lower" in visibility.occluded(assessment)
    return flags


def with_landmarks(
    dataset: FaceDataset, analyzer: FaceAnalyzer | None = None, cache: LandmarkCache | None = None,
    progress: bool = True,
) -> LandmarkData:
    return LandmarkData(dataset, extract_dataset(dataset, analyzer or FaceAnalyzer(), cache, progress))


@dataclass
class CropData:
    """The primary face of every dataset image as a crop, with its landmarks in crop coordinates."""

    crops: np.ndarray  # (n, size, size) uint8, zeros where no face was found
    landmarks: np.ndarray  # (n, 68, 2) float32 in 0..1 of the crop, NaN where no face was found
    found: np.ndarray  # (n,) bool
    whole_image: np.ndarray  # (n,) bool: the crop is the whole image (detector found nothing in a small crop)
    errors: list[str]  # unreadable files

    @property
    def found_fraction(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0


def extract_crops(
    dataset: FaceDataset, analyzer: FaceAnalyzer, spec: CropSpec, cache: LandmarkCache | None = None,
    progress: bool = True,
) -> CropData:
    """The CNN's crop of the largest face of each image (in memory). Aligned crops are cut from the cached
    landmarks; box crops need the detector's box, so dlib runs on every image."""
    if spec.kind == "aligned":
        extracted = extract_dataset(dataset, analyzer, cache, progress)
        return aligned_crop_data(dataset, extracted, spec, progress)
    n, size = len(dataset), spec.size
    crops = np.zeros((n, size, size), np.uint8)
    landmarks = np.full((n, 68, 2), np.nan, np.float32)
    found = np.zeros(n, bool)
    whole = np.zeros(n, bool)
    errors: list[str] = []
    for i, path in enumerate(tqdm(dataset.paths, desc=f"face crops {dataset.name}", disable=not progress)):
        try:
            gray = read_gray(path)
        except ImageError as error:
            errors.append(str(error))
            continue
        faces = analyzer.analyze(gray)
        if not faces:
            continue
        face = faces[0]
        crops[i], landmarks[i] = spec.crop(gray, face), spec.landmarks(face)
        found[i], whole[i] = True, face.box.source == "whole_image"
    return CropData(crops, landmarks, found, whole, errors)


def aligned_crop_data(dataset: FaceDataset, extracted: ExtractedLandmarks, spec: CropSpec,
                      progress: bool = True) -> CropData:
    """Aligned crops of the faces whose landmarks are known (a tight crop whose face the detector missed is
    aligned on the landmarks placed in the whole crop, as the landmark path reads it)."""
    n, size = len(dataset), spec.size
    crops = np.zeros((n, size, size), np.uint8)
    landmarks = np.full((n, 68, 2), np.nan, np.float32)
    errors: list[str] = []
    found = extracted.found.copy()
    for i in tqdm(np.flatnonzero(found), desc=f"aligned crops {dataset.name}", disable=not progress):
        try:
            gray = read_gray(dataset.paths[i])
        except ImageError as error:
            errors.append(str(error))
            found[i] = False
            continue
        face = Face.from_landmarks(extracted.landmarks[i])
        crops[i], landmarks[i] = spec.crop(gray, face), spec.landmarks(face)
    return CropData(crops, landmarks, found, extracted.whole_image & found, errors)
