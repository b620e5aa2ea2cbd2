"""White-box gradient attacks: FGSM and PGD (L-inf, untargeted) against a torch model on [0, 1] pixels, and the
glue that runs them through the exact face-crop geometry of the CNN path so that the perturbation lands in the
full image (where the landmark pipeline, too, can be tested with it: transfer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_perception.attacks.pixels import check_u8
from emotion_perception.attacks.scaling import resize_matrix
from emotion_perception.core.faces import FaceBox
from emotion_perception.core.types import Face
from emotion_perception.models.cnn import normalise
from emotion_perception.models.crops import DEFAULT_MARGIN, CropSpec, align_matrix, crop_square


class PixelModel(nn.Module):
    """A CNN wrapped to take [0, 1] pixels: logits = model(normalise(x)) with the normalisation its header names."""

    def __init__(self, model: nn.Module, header: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.header = model, header

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(x, self.header))


def pixel_model(model: nn.Module, header: dict) -> PixelModel:
    """The CNN of `load_cnn` (model, header) as a [0, 1]-pixel classifier in eval mode."""
    return PixelModel(model.eval(), header).eval()


Forward = Callable[[torch.Tensor], torch.Tensor]


def _labels_for(forward: Forward, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The true labels, or the model's own predictions on the clean input where none are known."""
    if labels is not None:
        return torch.as_tensor(labels, dtype=torch.long)
    with torch.no_grad():
        return forward(x).argmax(dim=1)


def _loss_gradient(forward: Forward, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(forward(x), labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def fgsm(
    forward: Forward, x: torch.Tensor, epsilon: float, labels: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Goodfellow's fast gradient sign method, untargeted: x + epsilon * sign(grad of the cross-entropy),
    clipped to [0, 1]. `forward` maps [0, 1] pixels to logits; `mask` (broadcastable, 0/1) limits where
    pixels may change."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    x = x.detach().float()
    step = epsilon * _loss_gradient(forward, x, _labels_for(forward, x, labels)).sign()
    if mask is not None:
        step = step * mask
    return (x + step).clamp(0.0, 1.0)


def pgd(
    forward: Forward, x: torch.Tensor, epsilon: float, steps: int = 10, step_size: float | None = None,
    random_start: bool = True, labels: torch.Tensor | None = None, seed: int = 0, mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.) in the L-inf ball of radius `epsilon` around x, untargeted;
    step size defaults to 2.5 * epsilon / steps; the random start is seeded."""
    if epsilon < 0 or steps < 1:
        raise ValueError(f"need epsilon >= 0 and steps >= 1, got {epsilon} and {steps}")
    alpha = 2.5 * epsilon / steps if step_size is None else float(step_size)
    x = x.detach().float()
    target = _labels_for(forward, x, labels)
    keep = torch.ones_like(x) if mask is None else mask.expand_as(x).float()
    adv = x.clone()
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        noise = (torch.rand(x.shape, generator=generator) * 2 - 1) * epsilon
        adv = (x + noise * keep).clamp(0.0, 1.0)
    for _ in range(steps):
        adv = adv + alpha * _loss_gradient(forward, adv, target).sign() * keep
        adv = torch.min(torch.max(adv, x - epsilon), x + epsilon).clamp(0.0, 1.0)
    return adv


def quantize_within(original: np.ndarray, attacked: np.ndarray, epsilon: float) -> np.ndarray:
    """uint8 image of `attacked` (float, 0..255 scale) whose change from `original` stays within epsilon
    (on [0, 1]): the change is rounded, then clipped to floor(255 * epsilon) grey levels."""
    limit = np.floor(255.0 * epsilon + 1e-6)
    delta = np.clip(np.round(attacked - original.astype(np.float64)), -limit, limit)
    return np.clip(original + delta, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CropMap:
    """The linear map from a grey image to one box crop, as `crops.crop_face` computes it:
    crop = left @ image[rows][:, cols] @ right.T (rows/cols repeat border pixels where the square leaves
    the image)."""

    rows: np.ndarray
    cols: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @classmethod
    def for_box(cls, shape: tuple[int, ...], box: FaceBox, size: int, margin: float = DEFAULT_MARGIN) -> CropMap:
        left, top, side = crop_square(box, margin)
        x0, y0, n = round(left), round(top), max(round(side), 1)
        h, w = shape[:2]
        rows = np.clip(np.arange(y0, y0 + n), 0, h - 1)
        cols = np.clip(np.arange(x0, x0 + n), 0, w - 1)
        matrix = resize_matrix(n, size, "area" if n > size else "linear")
        return cls(rows, cols, matrix, matrix)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The float crop of a grey image."""
        return self.left @ image[self.rows][:, self.cols].astype(np.float64) @ self.right.T

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        left = torch.as_tensor(self.left, dtype=torch.float32)
        right = torch.as_tensor(self.right, dtype=torch.float32)
        return left @ image.index_select(0, torch.as_tensor(self.rows)).index_select(
            1, torch.as_tensor(self.cols)) @ right.T

    def region(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the pixels the crop reads, inclusive bounds."""
        return int(self.rows.min()), int(self.rows.max()), int(self.cols.min()), int(self.cols.max())


_PYRAMID = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def pyr_down(image: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown of a (h, w) image, differentiable: a 5-tap Gaussian with reflected borders, every second pixel."""
    x = F.pad(image[None, None], (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, _PYRAMID.view(1, 1, 1, 5))
    x = F.conv2d(x, _PYRAMID.view(1, 1, 5, 1))
    return x[0, 0, ::2, ::2]


@dataclass(frozen=True)
class AlignedMap:
    """One aligned crop as `crops.aligned_crop` cuts it (`levels` pyrDowns, then the warp `matrix`), differentiable."""

    matrix: np.ndarray  # image (after the pyramid levels) -> crop
    levels: int
    size: int
    shape: tuple[int, int]

    @classmethod
    def for_landmarks(cls, shape: tuple[int, ...], landmarks: np.ndarray, size: int) -> AlignedMap:
        points, levels = np.asarray(landmarks, np.float64), 0
        matrix = align_matrix(points, size)
        h, w = shape[:2]
        while np.hypot(*matrix[:, 0]) < 0.5 and min(h, w) >= 4:
            points, levels, h, w = points / 2, levels + 1, (h + 1) // 2, (w + 1) // 2
            matrix = align_matrix(points, size)
        return cls(matrix, levels, size, (int(shape[0]), int(shape[1])))

    def _sources(self) -> np.ndarray:
        """(size, size, 2) source pixel coordinates (x, y) of the crop's pixels, in the pyramid level's image."""
        inverse = cv2.invertAffineTransform(self.matrix)
        v, u = np.mgrid[0 : self.size, 0 : self.size].astype(np.float64)
        return np.stack([u, v, np.ones_like(u)], axis=-1) @ inverse.T

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        for _ in range(self.levels):
            image = pyr_down(image)
        h, w = image.shape
        xy = torch.as_tensor(self._sources(), dtype=torch.float32)
        grid = torch.stack([2 * xy[..., 0] / max(w - 1, 1) - 1, 2 * xy[..., 1] / max(h - 1, 1) - 1], dim=-1)
        return F.grid_sample(image[None, None], grid[None], mode="bilinear", padding_mode="border",
                             align_corners=True)[0, 0]

    def region(self) -> tuple[int, int, int, int]:
        xy = self._sources().reshape(-1, 2) * 2**self.levels
        reach = 2 ** (self.levels + 1)  # the pyramid's taps and the bilinear neighbours
        h, w = self.shape
        x0, y0 = np.clip(np.floor(xy.min(0)) - reach, 0, [w - 1, h - 1]).astype(int)
        x1, y1 = np.clip(np.ceil(xy.max(0)) + reach, 0, [w - 1, h - 1]).astype(int)
        return int(y0), int(y1), int(x0), int(x1)


def crop_maps(shape: tuple[int, ...], faces: Sequence[Face], spec: CropSpec) -> list[CropMap | AlignedMap]:
    """The differentiable crop of each face as `spec` cuts it."""
    if spec.kind == "aligned":
        return [AlignedMap.for_landmarks(shape, face.landmarks, spec.size) for face in faces]
    return [CropMap.for_box(shape, face.box, spec.size, spec.margin) for face in faces]


class ImageToCrops(nn.Module):
    """Differentiable: grey image (h, w) in [0, 1] -> its face crops (n, 1, s, s), through crop maps."""

    def __init__(self, maps: Sequence[CropMap | AlignedMap]) -> None:
        super().__init__()
        self.maps = list(maps)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.crop(image) for m in self.maps]).unsqueeze(1)

    def mask(self, shape: tuple[int, int]) -> torch.Tensor:
        """1 on every pixel some crop reads, 0 elsewhere."""
        mask = torch.zeros(shape)
        for m in self.maps:
            top, bottom, left, right = m.region()
            mask[top : bottom + 1, left : right + 1] = 1.0
        return mask


def attack_faces(
    gray: np.ndarray, faces: Sequence[Face], model: nn.Module, spec: CropSpec, attack: str = "fgsm",
    epsilon: float = 0.01, labels: Sequence[int] | None = None, steps: int = 10, step_size: float | None = None,
    random_start: bool = True, seed: int = 0,
) -> np.ndarray:
    """FGSM or PGD against a [0, 1]-pixel CNN (`PixelModel`) that sees the faces' crops as `spec` cuts them,
    crafted on the full-resolution grey image itself: only pixels the crops read change, by at most epsilon, and
    the perturbation reaches the CNN through the crop's own resampling (exactly for box crops; aligned crops
    through a differentiable copy of OpenCV's pyramid and warp). Returns the attacked uint8 grey image, which
    the landmark pipeline can read too (transfer)."""
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be fgsm or pgd, got {attack!r}")
    gray = check_u8(gray)
    if gray.ndim != 2:
        raise ValueError(f"expected a grey image, got shape {gray.shape}")
    if not faces:
        return gray.copy()
    to_crops = ImageToCrops(crop_maps(gray.shape, faces, spec))

    def forward(image: torch.Tensor) -> torch.Tensor:
        return model(to_crops(image))

    x = torch.from_numpy(gray.astype(np.float32) / 255.0)
    mask = to_crops.mask(gray.shape)
    target = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
    if attack == "fgsm":
        adv = fgsm(forward, x, epsilon, target, mask)
    else:
        adv = pgd(forward, x, epsilon, steps, step_size, random_start, target, seed, mask)
    return quantize_within(gray, adv.numpy().astype(np.float64) * 255.0, epsilon)


def add_gray_change(image: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Carry a change made on the grey version of a colour image over to the colour image: the same change
    in every colour channel (grey is a weighted mean of the channels, so it changes by the same amount)."""
    if image.ndim == 2:
        return after.copy()
    delta = after.astype(np.int16) - before.astype(np.int16)
    out = image.astype(np.int16)
    out[:, :, :3] += delta[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)
