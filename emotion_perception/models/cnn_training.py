"""Training of the emotion CNNs on in-memory face crops (CPU or CUDA).

The recipe (chosen by leave-one-dataset-out accuracy, see docs/models.md): aligned crops standardised per crop;
batches drawn with balancing weights (each dataset's share grows with the square root of its size, each class's
share within a dataset with the square root of its count); augmentation for what differs between cameras and
wards (`models.augment`: geometry, light and optics, occluders from the landmarks); cross-entropy with label
smoothing; SGD with Nesterov momentum and a cosine schedule after one warm-up epoch. The DCNN keeps its paper
recipe (Nadam, ReduceLROnPlateau, early stopping). With a checkpoint folder, every epoch is saved and a stopped
training resumes where it was.
"""

from __future__ import annotations

import copy
import datetime
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from torch import nn
from tqdm import tqdm

from emotion_perception.core.atomic import atomic_path
from emotion_perception.models.augment import Augmentation, augment_batch
from emotion_perception.models.balance import BALANCES, balancing_weights
from emotion_perception.models.cnn import (
    ARCHS,
    INPUT_SIZES,
    CnnClassifier,
    MultiTaskNet,
    build_model,
    count_parameters,
    crops_to_tensor,
    multitask_loss,
    normalise,
    resolve_device,
)
from emotion_perception.models.crops import DEFAULT_MARGIN, CropSpec

# The paper's LR steps at epochs 80/120/160/180 of 200 (Keras CIFAR ResNet example), as budget fractions.
LR_STEPS = ((0.4, 0.1), (0.6, 0.01), (0.8, 0.001), (0.9, 0.0005))
SCHEDULES = ("cosine", "steps")


@dataclass
class TrainSettings:
    """How one CNN is trained (see the module docstring for the recipe). `val_fraction` of the training subjects
    are held out to pick the epoch with the best validation accuracy (0: the last epoch is kept)."""

    arch: str = "resnet_wide"
    input_size: int = 48
    crop: str = "aligned"
    margin: float = DEFAULT_MARGIN  # box crops only
    per_crop: bool = True
    epochs: int = 30
    batch_size: int = 128
    lr: float | None = None
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    label_smoothing: float = 0.1
    balance: str = "sqrt"
    augment: bool = True
    camera_augment: bool = True
    occlusion: float = 0.25
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def check(self) -> None:
        problems = {
            f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHS)}": self.arch not in ARCHS,
            f"input size must be one of {INPUT_SIZES}, got {self.input_size}": self.input_size not in INPUT_SIZES,
            f"need epochs >= 1 and batch size >= 2, got {self.epochs} and {self.batch_size}":
                self.epochs < 1 or self.batch_size < 2,
            f"validation fraction must be in [0, 0.5), got {self.val_fraction}": not 0 <= self.val_fraction < 0.5,
            f"learning rate must be > 0, got {self.lr}": self.lr is not None and not self.lr > 0,
            f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}": self.balance not in BALANCES,
            f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}": self.schedule not in SCHEDULES,
            f"label smoothing must be in [0, 1), got {self.label_smoothing}": not 0 <= self.label_smoothing < 1,
            f"occlusion must be a probability, got {self.occlusion}": not 0 <= self.occlusion <= 1,
        }
        CropSpec(self.crop, self.input_size, self.margin)  # raises for an unknown kind
        bad = [message for message, failed in problems.items() if failed]
        if bad:
            raise ValueError(bad[0])

    @property
    def is_dcnn(self) -> bool:
        return self.arch == "dcnn"

    @property
    def crop_spec(self) -> CropSpec:
        return CropSpec(self.crop, self.input_size, self.margin)

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(geometry=self.augment, camera=self.augment and self.camera_augment,
                            occlusion=self.occlusion if self.augment else 0.0)


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


def lr_factor(epoch: int, epochs: int, schedule: str) -> float:
    """LR multiplier at the start of `epoch`: the paper's steps scaled to the budget, or one linear warm-up epoch
    and a cosine decay to zero."""
    if schedule == "steps":
        factor = 1.0
        for fraction, value in LR_STEPS:
            if epoch >= math.ceil(fraction * epochs):
                factor = value
        return factor
    if epoch == 0:
        return 0.1
    return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(epochs - 1, 1)))


class _Optimiser:
    """The arch's optimiser and LR schedule: SGD (Nesterov for the cosine schedule) for the ResNets, Nadam with
    ReduceLROnPlateau and early stopping on the validation loss for the DCNN."""

    def __init__(self, model: nn.Module, settings: TrainSettings) -> None:
        self.settings = settings
        if settings.is_dcnn:
            self.optimizer: torch.optim.Optimizer = torch.optim.NAdam(model.parameters(), lr=settings.lr or 1e-3)
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", factor=0.1,
                                                                      patience=5)
            self.stopper = EarlyStopping(settings.patience)
        else:
            self.optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr or 0.05, momentum=0.9,
                                             weight_decay=settings.weight_decay,
                                             nesterov=settings.schedule == "cosine")
        self.base_lr = self.optimizer.param_groups[0]["lr"]

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def start_epoch(self, epoch: int) -> None:
        if not self.settings.is_dcnn:
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * lr_factor(epoch, self.settings.epochs, self.settings.schedule)

    def end_epoch(self, monitored_loss: float) -> bool:
        """Step the plateau schedule (DCNN); True when early stopping ends the training."""
        if not self.settings.is_dcnn:
            return False
        self.plateau.step(monitored_loss)
        return self.stopper.step(monitored_loss)


@dataclass
class _Data:
    """What a training reads: uint8 crops, class indices, landmarks in crop coordinates (occlusion and the
    multitask head; None without), sampling weights of the training positions, and the positions that train and
    validate."""

    crops: np.ndarray
    y: torch.Tensor
    landmarks: np.ndarray | None
    weights: torch.Tensor
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


def train_epoch(model: nn.Module, data: _Data, header: dict[str, Any], optimiser: _Optimiser,
                settings: TrainSettings, generator: torch.Generator, rng: np.random.Generator,
                device: str) -> dict[str, float]:
    """One epoch: as many training crops as there are, drawn with the balancing weights; mean loss and accuracy."""
    model.train()
    draws = torch.multinomial(data.weights, len(data.train), replacement=True, generator=generator).numpy()
    order = data.train[draws]
    total, seen, correct = 0.0, 0, 0
    for start in range(0, len(order), settings.batch_size):
        batch = order[start : start + settings.batch_size]
        if len(batch) < 2:  # BatchNorm needs two samples
            continue
        points = None if data.landmarks is None else data.landmarks[batch]
        if settings.augment:
            pixels, moved = augment_batch(data.crops[batch], points, settings.augmentation, generator, rng)
        else:
            pixels = torch.from_numpy(data.crops[batch].astype(np.float32) / 255.0).unsqueeze(1)
            moved = None if points is None else torch.as_tensor(points)
        xb = normalise(pixels, header).to(device).contiguous(memory_format=torch.channels_last)
        yb = data.y[batch].to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            if isinstance(model, MultiTaskNet):
                logits, predicted = model.forward_both(xb)
                loss = multitask_loss(logits.float(), yb, predicted.float(), moved.to(device))
            else:
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=settings.label_smoothing)
        optimiser.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.optimizer.step()
        total += float(loss.detach()) * len(batch)
        seen += len(batch)
        correct += int((logits.argmax(1) == yb).sum())
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}


def _normalisation(crops: np.ndarray, train: np.ndarray, settings: TrainSettings) -> dict[str, Any]:
    """The header's normalisation: per crop, or the training crops' mean and standard deviation."""
    if settings.per_crop:
        return {"mean": 0.0, "std": 1.0, "per_crop_standardisation": True,
                "normalisation": "each crop: (pixel / 255 - its mean) / (its standard deviation + 0.02)"}
    return {"mean": float(crops[train].mean() / 255.0), "std": float(crops[train].std() / 255.0) or 1.0,
            "normalisation": "(pixel / 255 - mean) / std on one grey channel"}


class Checkpoints:
    """The state of a training after each epoch in `folder` (written atomically), so that a stopped training
    resumes from its last finished epoch; files of another recipe are not used."""

    def __init__(self, folder: str | Path | None, fingerprint: str) -> None:
        self.path = None if folder is None else Path(folder) / "last_epoch.pt"
        self.fingerprint = fingerprint

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        return state if state.get("fingerprint") == self.fingerprint else None

    def save(self, state: dict[str, Any]) -> None:
        if self.path is not None:
            with atomic_path(self.path) as partial:
                torch.save({**state, "fingerprint": self.fingerprint}, partial)


def train_cnn(
    crops: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings,
    label_names: list[str] | None = None,
    groups: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    header: dict[str, Any] | None = None,
    strata: np.ndarray | None = None,
    checkpoints: str | Path | None = None,
) -> TrainResult:
    """Train `settings.arch` on (n, s, s) uint8 crops with string labels. `groups` (subjects) keep people out of
    the validation part they train on; `landmarks` (n, 68, 2, crop coordinates 0..1) place the occluders and
    train the multitask head; `strata` (the dataset of each crop) drive the balancing. The epoch with the best
    validation accuracy (the last one without validation) is kept."""
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
    norm = _normalisation(crops, train_idx, settings)
    weights = balancing_weights(labels[train_idx], None if strata is None else np.asarray(strata)[train_idx],
                                settings.balance)
    data = _Data(crops, torch.as_tensor([names.index(label) for label in labels]), landmarks,
                 torch.as_tensor(weights), train_idx, val_idx)
    model = build_model(settings.arch, len(names), settings.input_size).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimiser = _Optimiser(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    history: list[dict[str, float]] = []
    best_state, best_key, best_epoch = None, (-1.0, 0.0), 0
    store = Checkpoints(checkpoints, repr((asdict(settings), names, len(labels), float(crops[:64].mean()))))
    resumed = store.load()
    if resumed:
        model.load_state_dict(resumed["model"])
        optimiser.optimizer.load_state_dict(resumed["optimizer"])
        generator.set_state(resumed["generator"])
        rng.bit_generator.state = resumed["rng"]
        history, best_state, best_key, best_epoch = (resumed["history"], resumed["best_state"],
                                                     tuple(resumed["best_key"]), resumed["best_epoch"])
    val_x = crops_to_tensor(crops[val_idx], norm) if len(val_idx) else None
    bar = tqdm(range(len(history), settings.epochs), desc=f"train {settings.arch}", disable=not settings.progress,
               initial=len(history), total=settings.epochs)
    for epoch in bar:
        optimiser.start_epoch(epoch)
        row = {"epoch": epoch + 1, **train_epoch(model, data, norm, optimiser, settings, generator, rng, device),
               "lr": optimiser.lr}
        key = (float(epoch), 0.0)
        if val_x is not None:
            row.update(evaluate_loss(model, val_x, data.y[val_idx], device))
            key = (row["val_accuracy"], -row["val_loss"])
        history.append(row)
        bar.set_postfix({k: round(v, 3) for k, v in row.items() if k != "epoch"})
        if key > best_key:
            best_key, best_epoch = key, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        stop = optimiser.end_epoch(row.get("val_loss", row["loss"]))
        store.save({"model": model.state_dict(), "optimizer": optimiser.optimizer.state_dict(),
                    "generator": generator.get_state(), "rng": rng.bit_generator.state, "history": history,
                    "best_state": best_state, "best_key": list(best_key), "best_epoch": best_epoch})
        if stop:
            break
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    full_header = {
        "arch": settings.arch, "labels": names, "input_size": settings.input_size, **norm,
        "crop": settings.crop_spec.to_header(),
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "parameters": count_parameters(model), "best_epoch": best_epoch, "epochs_run": len(history),
        "n_train": len(train_idx), "n_val": len(val_idx), "train_seconds": round(seconds, 1),
        "device": device, "torch": torch.__version__, "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(header or {}),
    }
    model = model.to(memory_format=torch.contiguous_format).cpu()
    return TrainResult(CnnClassifier(model, full_header), history, best_epoch, seconds)


@torch.no_grad()
def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> dict[str, float]:
    model.eval()
    logits = torch.cat([model(x[i : i + 512].to(device)).float().cpu() for i in range(0, len(x), 512)])
    accuracy = float((logits.argmax(1) == y).float().mean())
    return {"val_loss": float(F.cross_entropy(logits, y)), "val_accuracy": accuracy}
