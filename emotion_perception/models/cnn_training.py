"""Training of the emotion CNNs on in-memory face crops (CPU or CUDA)."""

from __future__ import annotations

import copy
import datetime
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from torch import nn
from tqdm import tqdm

from emotion_perception.models.cnn import (
    ARCHS,
    INPUT_SIZES,
    CnnClassifier,
    MultiTaskNet,
    build_model,
    count_parameters,
    crops_to_tensor,
    multitask_loss,
    resolve_device,
)
from emotion_perception.models.crops import DEFAULT_MARGIN, augment

# The paper's LR steps at epochs 80/120/160/180 of 200 (Keras CIFAR ResNet example), as budget fractions.
LR_STEPS = ((0.4, 0.1), (0.6, 0.01), (0.8, 0.001), (0.9, 0.0005))


@dataclass
class TrainSettings:
    """How one CNN is trained.

    ResNets (small_resnet, resnet18, multitask): SGD (lr 0.05, momentum 0.9, weight decay 5e-4), LR steps at
    40/60/80/90% of `epochs`. DCNN: Nadam (lr 1e-3), ReduceLROnPlateau (patience 5) and early stopping
    (patience `patience`) on the validation loss. All: the epoch with the best validation accuracy is kept;
    `val_fraction` of the training subjects are held out for it (0: no hold-out, the last epoch is kept).
    """

    arch: str = "small_resnet"
    input_size: int = 48
    epochs: int = 60
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 5e-4
    patience: int = 10
    val_fraction: float = 0.1
    augment: bool = True
    margin: float = DEFAULT_MARGIN
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def check(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHS)}")
        if self.input_size not in INPUT_SIZES:
            raise ValueError(f"input size must be one of {INPUT_SIZES}, got {self.input_size}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch size >= 2, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError(f"validation fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")

    @property
    def is_dcnn(self) -> bool:
        return self.arch == "dcnn"


@dataclass
class TrainResult:
    """A trained classifier with its history (one dict per epoch) and the wall time."""

    classifier: CnnClassifier
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def validation_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions: whole subjects held out, stratified by label; an image-level stratified split
    where there are too few subjects."""
    n = len(labels)
    if fraction <= 0:
        return np.arange(n), np.zeros(0, int)
    splits = max(2, round(1 / fraction))
    if len(set(groups)) >= splits:
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
        train, val = next(splitter.split(np.zeros(n), labels, groups))
        return train, val
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    try:
        return next(splitter.split(np.zeros(n), labels))
    except ValueError:  # a class with a single image
        order = np.random.default_rng(seed).permutation(n)
        cut = max(1, int(n * fraction))
        return np.sort(order[cut:]), np.sort(order[:cut])


class EarlyStopping:
    """Stop when the monitored loss has not improved for `patience` epochs in a row."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, value: float) -> bool:
        """Record an epoch's loss; True when training should stop."""
        if value < self.best:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def resnet_lr_factor(epoch: int, epochs: int) -> float:
    """LR multiplier of the paper's step schedule scaled to an `epochs` budget."""
    factor = 1.0
    for fraction, value in LR_STEPS:
        if epoch >= math.ceil(fraction * epochs):
            factor = value
    return factor


class _Optimiser:
    """The arch's optimiser and LR schedule: SGD with the paper's steps (ResNets) or Nadam with ReduceLROnPlateau
    and early stopping on the validation loss (DCNN)."""

    def __init__(self, model: nn.Module, settings: TrainSettings) -> None:
        self.settings = settings
        if settings.is_dcnn:
            self.optimizer: torch.optim.Optimizer = torch.optim.NAdam(model.parameters(), lr=settings.lr or 1e-3)
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", factor=0.1,
                                                                      patience=5)
            self.stopper = EarlyStopping(settings.patience)
        else:
            self.optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr or 0.05, momentum=0.9,
                                             weight_decay=settings.weight_decay)
        self.base_lr = self.optimizer.param_groups[0]["lr"]

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def start_epoch(self, epoch: int) -> None:
        if not self.settings.is_dcnn:
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * resnet_lr_factor(epoch, self.settings.epochs)

    def end_epoch(self, monitored_loss: float) -> bool:
        """Step the plateau schedule (DCNN); True when early stopping ends the training."""
        if not self.settings.is_dcnn:
            return False
        self.plateau.step(monitored_loss)
        return self.stopper.step(monitored_loss)


@dataclass
class _Batches:
    """The training tensors: normalised crops x, class indices y, landmarks (multitask) and the positions that
    train and validate."""

    x: torch.Tensor
    y: torch.Tensor
    points: torch.Tensor | None
    train: np.ndarray
    val: np.ndarray


def check_training_inputs(crops: np.ndarray, labels: np.ndarray, names: list[str], settings: TrainSettings,
                          landmarks: np.ndarray | None) -> None:
    """ValueError naming what does not fit the settings."""
    settings.check()
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label list {names}")
    if crops.shape[1:] != (settings.input_size, settings.input_size):
        raise ValueError(f"crops are {crops.shape[1:]}, the settings say {settings.input_size} px")
    if settings.arch == "multitask" and (landmarks is None or np.isnan(landmarks).any()):
        raise ValueError("multitask training needs the landmarks of every crop")


def train_epoch(model: nn.Module, data: _Batches, optimiser: _Optimiser, settings: TrainSettings,
                generator: torch.Generator, device: str) -> dict[str, float]:
    """One pass over the training positions in a seeded order; the epoch's mean loss and accuracy."""
    model.train()
    order = data.train[torch.randperm(len(data.train), generator=generator).numpy()]
    total, seen, correct = 0.0, 0, 0
    for start in range(0, len(order), settings.batch_size):
        batch = order[start : start + settings.batch_size]
        if len(batch) < 2:  # BatchNorm needs two samples
            continue
        xb, yb = data.x[batch], data.y[batch]
        pb = None if data.points is None else data.points[batch]
        if settings.augment:
            xb, pb = augment(xb, generator, pb if settings.arch == "multitask" else None)
        xb, yb = xb.to(device), yb.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            if isinstance(model, MultiTaskNet):
                logits, predicted = model.forward_both(xb)
                loss = multitask_loss(logits.float(), yb, predicted.float(), pb.to(device))
            else:
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
        optimiser.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.optimizer.step()
        total += float(loss.detach()) * len(batch)
        seen += len(batch)
        correct += int((logits.argmax(1) == yb).sum())
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}


def train_cnn(
    crops: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings,
    label_names: list[str] | None = None,
    groups: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    header: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `settings.arch` on (n, s, s) uint8 crops with string labels; `groups` (subjects) keep people out of
    the validation part they train on; `landmarks` (n, 68, 2) in crop coordinates are needed by multitask.
    The epoch with the best validation accuracy (the last one without validation) is kept."""
    started = time.perf_counter()
    labels = np.asarray(labels).astype(str)
    names = sorted(set(labels)) if label_names is None else list(label_names)
    check_training_inputs(crops, labels, names, settings, landmarks)
    seed_everything(settings.seed)
    device, warning = resolve_device(settings.device)
    if warning:
        print(f"warning: {warning}")
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    train_idx, val_idx = validation_split(labels, groups, settings.val_fraction, settings.seed)
    mean = float(crops[train_idx].mean() / 255.0)
    std = float(crops[train_idx].std() / 255.0) or 1.0
    data = _Batches(crops_to_tensor(crops, mean, std), torch.as_tensor([names.index(label) for label in labels]),
                    None if landmarks is None else torch.as_tensor(landmarks, dtype=torch.float32),
                    train_idx, val_idx)
    model = build_model(settings.arch, len(names), settings.input_size).to(device)
    optimiser = _Optimiser(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    history: list[dict[str, float]] = []
    best_state, best_key, best_epoch = None, (-1.0, 0.0), 0
    bar = tqdm(range(settings.epochs), desc=f"train {settings.arch}", disable=not settings.progress)
    for epoch in bar:
        optimiser.start_epoch(epoch)
        row = {"epoch": epoch + 1, **train_epoch(model, data, optimiser, settings, generator, device),
               "lr": optimiser.lr}
        key = (float(epoch), 0.0)
        if len(val_idx):
            row.update(evaluate_loss(model, data.x[val_idx], data.y[val_idx], device))
            key = (row["val_accuracy"], -row["val_loss"])
        history.append(row)
        bar.set_postfix({k: round(v, 3) for k, v in row.items() if k != "epoch"})
        if key > best_key:
            best_key, best_epoch = key, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if optimiser.end_epoch(row.get("val_loss", row["loss"])):
            break
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    full_header = {
        "arch": settings.arch, "labels": names, "input_size": settings.input_size, "mean": mean, "std": std,
        "crop": {"margin": settings.margin, "detector": "dlib HOG (emotion_perception.core.faces)"},
        "normalisation": "(pixel / 255 - mean) / std on one grey channel",
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "parameters": count_parameters(model), "best_epoch": best_epoch, "epochs_run": len(history),
        "n_train": len(train_idx), "n_val": len(val_idx), "train_seconds": round(seconds, 1),
        "device": device, "torch": torch.__version__, "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(header or {}),
    }
    return TrainResult(CnnClassifier(model.cpu(), full_header), history, best_epoch, seconds)


@torch.no_grad()
def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> dict[str, float]:
    model.eval()
    logits = torch.cat([model(x[i : i + 512].to(device)).float().cpu() for i in range(0, len(x), 512)])
    accuracy = float((logits.argmax(1) == y).float().mean())
    return {"val_loss": float(F.cross_entropy(logits, y)), "val_accuracy": accuracy}
