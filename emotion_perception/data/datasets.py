"""Labelled face folders (`<class>/<image>` with an optional manifest.csv) and subject-aware metadata."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_perception.core.errors import DatasetError
from emotion_perception.core.labels import check_labels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm"}


@dataclass
class FaceDataset:
    """Image paths with their labels and, where the manifest has them, subjects and train/test split."""

    root: Path
    name: str
    paths: list[Path]
    labels: np.ndarray
    subjects: np.ndarray | None = None
    splits: np.ndarray | None = None
    sources: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    def __len__(self) -> int:
        return len(self.paths)

    def groups(self) -> np.ndarray:
        """Subject ids for subject-independent splits; images without a subject are their own group.

        Subject ids are compared across datasets on purpose: the two CK+ folders share ids (S010...),
        so one person never lands on both sides of a split when they are mixed.
        """
        own = np.array([f"image:{s}/{p.name}" for s, p in zip(self.sources, self.paths)], dtype=object)
        if self.subjects is None:
            return own
        return np.where([s is None for s in self.subjects], own, self.subjects).astype(object)

    def sources_without_subjects(self) -> list[str]:
        """Names of the parts whose images have no subject id (subject-kfold splits those image by image)."""
        if self.subjects is None:
            return sorted(set(self.sources.tolist()))
        return sorted({str(src) for src, s in zip(self.sources, self.subjects) if s is None})

    def subset(self, mask: np.ndarray) -> FaceDataset:
        """The images where `mask` is true."""
        index = np.flatnonzero(mask)
        return FaceDataset(
            self.root, self.name, [self.paths[i] for i in index], self.labels[index],
            None if self.subjects is None else self.subjects[index],
            None if self.splits is None else self.splits[index],
            self.sources[index],
        )


def load_folder(root: str | Path, labels: list[str] | None = None) -> FaceDataset:
    """Read a dataset folder; `labels` keeps only those classes."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    manifest = root / "manifest.csv"
    rows = read_manifest(manifest) if manifest.is_file() else _scan_classes(root)
    if labels is not None:
        rows = [row for row in rows if row["label"] in labels]
    if not rows:
        raise DatasetError(f"{root}: no labelled images found (expected <class>/<image> folders)")
    try:
        check_labels([row["label"] for row in rows])
    except ValueError as error:
        raise DatasetError(f"{root}: {error}") from None
    paths = [root / row["path"] for row in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} manifest entries missing on disk, e.g. {missing[0]}")
    has = set(rows[0])
    return FaceDataset(
        root=root,
        name=root.name,
        paths=paths,
        labels=np.array([row["label"] for row in rows], dtype=object),
        subjects=np.array([row["subject"] for row in rows], dtype=object) if "subject" in has else None,
        splits=np.array([row["split"] for row in rows], dtype=object) if "split" in has else None,
        sources=np.array([root.name] * len(rows), dtype=object),
    )


def concat(datasets: list[FaceDataset]) -> FaceDataset:
    """One dataset from several. Subjects and splits are kept where a part has them (None for the rows of the parts
    that have none)."""
    if len(datasets) == 1:
        return datasets[0]
    subjects = splits = None
    if any(d.subjects is not None for d in datasets):
        subjects = np.concatenate(
            [d.subjects if d.subjects is not None else np.full(len(d), None, dtype=object) for d in datasets]
        )
    if any(d.splits is not None for d in datasets):
        splits = np.concatenate(
            [d.splits if d.splits is not None else np.full(len(d), None, dtype=object) for d in datasets]
        )
    return FaceDataset(
        root=datasets[0].root,
        name="+".join(d.name for d in datasets),
        paths=[p for d in datasets for p in d.paths],
        labels=np.concatenate([d.labels for d in datasets]),
        subjects=subjects,
        splits=splits,
        sources=np.concatenate([d.sources for d in datasets]),
    )


def parse_data_arg(spec: str) -> tuple[str, list[str] | None, str | None]:
    """`DIR[:label,label][@split]` -> (dir, labels to keep or None, manifest split to keep or None)."""
    spec, _, split = spec.partition("@")
    path, _, labels = spec.partition(":")
    return path, (labels.split(",") if labels else None), (split or None)


def load_datasets(specs: list[str]) -> FaceDataset:
    """One dataset from `--data` arguments."""
    parts = []
    for path, labels, split in map(parse_data_arg, specs):
        dataset = load_folder(path, labels)
        if split is not None:
            if dataset.splits is None or not (dataset.splits == split).any():
                raise DatasetError(f"{path}: no rows with split {split!r} in its manifest")
            dataset = dataset.subset(dataset.splits == split)
        parts.append(dataset)
    return concat(parts)


def read_manifest(manifest: Path, required: tuple[str, ...] = ("path", "label")) -> list[dict[str, str]]:
    """The rows of a manifest.csv (UTF-8 text), each with every column as a string.

    Raises DatasetError, naming the file and the row, for a file that is not UTF-8 CSV text, a missing column,
    a row with too few or too many fields or an empty required field, and a path outside the manifest's folder
    (absolute, or leading out with `..`): a dataset reads only its own files."""
    try:
        with manifest.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not set(required) <= set(reader.fieldnames):
                wanted = f"a {required[0]!r} column" if len(required) == 1 else f"the columns {','.join(required)}"
                raise DatasetError(f"{manifest}: needs at least {wanted}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{manifest}: not a UTF-8 CSV text file ({error})") from None
    except OSError as error:
        raise DatasetError(f"{manifest}: cannot read it ({error.strerror or error})") from None
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row or None in row.values():
            raise DatasetError(f"{manifest}, line {number}: expected {len(reader.fieldnames)} fields")
        empty = [name for name in required if not row[name].strip()]
        if empty:
            raise DatasetError(f"{manifest}, line {number}: empty {', '.join(empty)}")
        if not inside_folder(row["path"]):
            raise DatasetError(f"{manifest}, line {number}: path {row['path']!r} lies outside the dataset folder")
    return rows


def inside_folder(relative: str) -> bool:
    """Whether a manifest path names a file inside the manifest's folder (relative, not leading out with `..`)."""
    normal = os.path.normpath(relative)
    return not os.path.isabs(relative) and normal != ".." and not normal.startswith(".." + os.sep)


def _scan_classes(root: Path) -> list[dict[str, str]]:
    return [
        {"path": str(image.relative_to(root)), "label": folder.name}
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for image in sorted(folder.iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]


def dataset_groups(dataset: FaceDataset) -> list[tuple[str, np.ndarray]]:
    """The datasets of a mix of folders, as (name, row mask): each folder, except that folders sharing a subject id
    (the two CK+ folders) are one dataset, named by their folders joined with "+"."""
    sources = dataset.sources.astype(str)
    folders = list(dict.fromkeys(sources))
    parent = {folder: folder for folder in folders}

    def root(folder: str) -> str:
        while parent[folder] != folder:
            folder = parent[folder]
        return folder

    owner: dict[str, str] = {}
    for source, subject in zip(sources, dataset.subjects if dataset.subjects is not None else [None] * len(sources)):
        if subject is not None:
            first = owner.setdefault(str(subject), source)
            parent[root(source)] = root(first)
    members: dict[str, list[str]] = {}
    for folder in folders:
        members.setdefault(root(folder), []).append(folder)
    return [("+".join(group), np.isin(sources, group)) for group in members.values()]


def dataset_names(dataset: FaceDataset) -> np.ndarray:
    """Each row's dataset, as `dataset_groups` names them (the strata that balanced training weighs equally)."""
    names = np.empty(len(dataset), dtype=object)
    for name, mask in dataset_groups(dataset):
        names[mask] = name
    return names
