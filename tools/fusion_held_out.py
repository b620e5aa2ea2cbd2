#!/usr/bin/env python3
"""The shipped forest, the shipped CNN and their plain average on faces neither was trained on (default: FER2013's
test split): accuracy over every image of the classes both know (no face counts as wrong), per-class recall, and
an exact McNemar test of the average against each model.

    .venv/bin/python tools/fusion_held_out.py [--data DIR[@SPLIT]]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import binomtest

from emotion_perception.core.images import read_gray
from emotion_perception.core.types import Face
from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import with_landmarks
from emotion_perception.models.cnn import CnnClassifier
from emotion_perception.models.landmark_model import EmotionModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/fer2013@test")
    args = parser.parse_args()
    data = with_landmarks(load_datasets([args.data]), progress=False)
    forest, cnn = EmotionModel.load(), CnnClassifier.load(None, "cpu")
    classes = np.array(sorted(set(forest.labels) & set(cnn.labels)))
    labels = data.dataset.labels.astype(str)
    known = np.isin(labels, classes)
    index = np.flatnonzero(data.extracted.found & known)
    columns = {name: [model.labels.index(c) for c in classes] for name, model in (("forest", forest), ("cnn", cnn))}
    proba: dict[str, list[np.ndarray]] = {"forest": [], "cnn": []}
    for i in index:
        gray, face = read_gray(data.dataset.paths[i]), [Face.from_landmarks(data.extracted.landmarks[i])]
        for name, model in (("forest", forest), ("cnn", cnn)):
            p = model.predict_proba(gray, face)[0][columns[name]]
            proba[name].append(p / p.sum())
    scores = {name: np.array(rows) for name, rows in proba.items()}
    scores["average"] = (scores["forest"] + scores["cnn"]) / 2
    truth = labels[index]
    right = {name: classes[p.argmax(1)] == truth for name, p in scores.items()}
    print(f"{args.data}: {len(index)} faces found of {int(known.sum())} images of the classes both models know")
    for name, hits in right.items():
        recall = {str(c): round(float(hits[truth == c].mean()), 2) for c in classes if (truth == c).any()}
        print(f"{name:8s} accuracy {hits.sum() / known.sum():.4f}  recall {recall}")
    for name in ("forest", "cnn"):
        b, c = int((right["average"] & ~right[name]).sum()), int((~right["average"] & right[name]).sum())
        print(f"average vs {name}: right only with the average {b}, only with the {name} {c}, "
              f"exact McNemar p = {binomtest(b, b + c).pvalue:.3g}")


if __name__ == "__main__":
    main()
