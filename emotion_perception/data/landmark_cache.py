"""Landmarks of dataset images, cached on disk by file content and extractor settings so re-runs skip dlib."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emotion_perception.core.errors import CacheError, ImageError
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.datasets import FaceDataset


def default_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emotion_perception" / "landmarks.sqlite"


@dataclass
class ExtractedLandmarks:
    """Primary-face landmarks per image: `found[i]` is false where no face (or no readable image) was found."""

    landmarks: np.ndarray  # (n, 68, 2) float32, NaN where not found
    found: np.ndarray  # (n,) bool
    whole_image: np.ndarray  # (n,) bool: the box was the whole crop, not a detection
    errors: list[str]  # unreadable files, one line each

    @property
    def found_fraction(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0


class LandmarkCache:
    """sqlite table: key = sha256(image bytes) + sha256(extractor settings) -> primary-face landmarks.

    CacheError when the file cannot be used (not a database, read-only, locked by another process too long)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS landmarks (key TEXT PRIMARY KEY, points BLOB, whole_image INTEGER)"
            )

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise CacheError(f"landmark cache {self.path}: {error} (--cache FILE elsewhere, or --no-cache)") from None

    def get(self, key: str) -> tuple[np.ndarray | None, bool] | None:
        with self._errors():
            row = self._db.execute("SELECT points, whole_image FROM landmarks WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        points = None if row[0] is None else np.frombuffer(row[0], np.float32).reshape(68, 2)
        return points, bool(row[1])

    def put(self, key: str, points: np.ndarray | None, whole_image: bool) -> None:
        blob = None if points is None else np.asarray(points, np.float32).tobytes()
        with self._errors():
            self._db.execute("INSERT OR REPLACE INTO landmarks VALUES (?, ?, ?)", (key, blob, int(whole_image)))

    def commit(self) -> None:
        with self._errors():
            self._db.commit()

    def close(self) -> None:
        self.commit()
        self._db.close()


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes (object arrays as text): a content key for caches."""
    array = np.ascontiguousarray(array)
    if array.dtype == object:
        array = array.astype(str)
    return hashlib.sha256(f"{array.shape}{array.dtype}".encode() + array.tobytes()).hexdigest()


def settings_digest(analyzer: FaceAnalyzer) -> str:
    return hashlib.sha256(json.dumps(analyzer.settings(), sort_keys=True).encode()).hexdigest()[:16]


def extract_dataset(
    dataset: FaceDataset,
    analyzer: FaceAnalyzer,
    cache: LandmarkCache | None = None,
    progress: bool = True,
) -> ExtractedLandmarks:
    """Landmarks of the largest face in every image of `dataset`, reading the cache first."""
    n = len(dataset)
    landmarks = np.full((n, 68, 2), np.nan, np.float32)
    found = np.zeros(n, bool)
    whole = np.zeros(n, bool)
    errors: list[str] = []
    digest = settings_digest(analyzer)
    for i, path in enumerate(tqdm(dataset.paths, desc=f"landmarks {dataset.name}", disable=not progress)):
        data = path.read_bytes()
        key = hashlib.sha256(data).hexdigest() + digest
        cached = cache.get(key) if cache else None
        if cached is None:
            try:
                faces = analyzer.analyze(read_gray(path))
            except ImageError as error:
                errors.append(str(error))
                continue
            cached = (faces[0].landmarks, faces[0].box.source == "whole_image") if faces else (None, False)
            if cache:
                cache.put(key, *cached)
                if i % 200 == 0:
                    cache.commit()
        points, whole[i] = cached
        if points is not None:
            landmarks[i], found[i] = points, True
    if cache:
        cache.commit()
    return ExtractedLandmarks(landmarks, found, whole, errors)


@dataclass
class LandmarkView:
    """Primary-face landmarks of in-memory images."""

    landmarks: np.ndarray  # (n, 68, 2), NaN where no face
    found: np.ndarray


def landmarks_of_images(
    grays: Sequence[np.ndarray], analyzer: FaceAnalyzer, cache: LandmarkCache | None,
    skip: np.ndarray | None = None, progress: bool = False, desc: str = "landmarks",
) -> LandmarkView:
    """Primary-face landmarks of in-memory images, cached by pixel content (+ extractor settings);
    images where `skip` is true are left as not found (the caller fills them in)."""
    n = len(grays)
    points = np.full((n, 68, 2), np.nan, np.float32)
    found = np.zeros(n, bool)
    digest = settings_digest(analyzer)
    for i, gray in enumerate(tqdm(grays, desc=desc, disable=not progress, leave=False)):
        if skip is not None and skip[i]:
            continue
        key = "img:" + array_digest(gray) + digest
        cached = cache.get(key) if cache else None
        if cached is None:
            faces = analyzer.analyze(gray)
            cached = (faces[0].landmarks, faces[0].box.source == "whole_image") if faces else (None, False)
            if cache:
                cache.put(key, *cached)
                if i % 200 == 0:  # other processes may use the cache meanwhile
                    cache.commit()
        if cached[0] is not None:
            points[i], found[i] = cached[0], True
    if cache:
        cache.commit()
    return LandmarkView(points, found)
