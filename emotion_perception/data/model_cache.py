"""Trained CNNs cached on disk by everything their weights depend on, beside the landmark cache, so that work that
trains the same model again (the trials' surrogate CNNs, in every new report folder) reads it instead.

The key is a digest of the training data's content (crops, labels, subjects), the training recipe, the torch
thread count, the library versions and the training code: any change trains anew, and a cached file is only used
where training would have given the same weights. Files are the safe CNN format of `models.cnn` (tensors and a
JSON header, read with `torch.load(weights_only=True)`), written atomically; an unreadable one counts as missing.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emotion_perception.core.errors import CnnFileError
from emotion_perception.data.landmark_cache import array_digest
from emotion_perception.models import augment, balance, cnn, cnn_training
from emotion_perception.models.cnn import load_cnn, save_cnn
from emotion_perception.models.cnn_training import TrainSettings

TRAINING_CODE = (cnn, cnn_training, augment, balance)


def training_key(crops: np.ndarray, labels: np.ndarray, groups: np.ndarray, classes: list[str],
                 settings: TrainSettings, **extra: Any) -> str:
    """The cache key of `train_cnn(crops, labels, settings, classes, groups)`; `extra` names anything else the
    weights depend on (the torch thread count of the training)."""
    code = hashlib.sha256(b"".join(Path(module.__file__).read_bytes() for module in TRAINING_CODE)).hexdigest()
    payload = {
        "crops": array_digest(crops), "labels": array_digest(np.asarray(labels).astype(str)),
        "groups": array_digest(np.asarray(groups).astype(str)), "classes": list(classes),
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "code": code,
        "versions": [platform.python_version(), np.__version__, torch.__version__], **extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


class CnnCache:
    """`root/<key>.pt` files of `models.cnn`'s format."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> tuple[nn.Module, dict[str, Any]] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_cnn(path)
        except CnnFileError:
            return None

    def save(self, key: str, model: nn.Module, header: dict[str, Any]) -> None:
        save_cnn(self.path(key), model, {**header, "cache_key": key})
