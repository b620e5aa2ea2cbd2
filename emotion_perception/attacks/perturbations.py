"""Attacks for robustness trials, as pure functions of (image, landmarks or model, parameters):

- Type A (Shehu et al. 2020): boxes over both eyes, placed from the 68 landmarks; also a training-time
  poisoning transform for the images of one class (`poison_class`).
- Type B: a box over the lower jaw and chin.
- FGSM and PGD (L-inf, untargeted) against a torch model on [0, 1] pixels, and the glue that runs them
  through the exact face-crop geometry of the CNN path so that the perturbation lands in the full image
  (where the landmark pipeline, too, can be tested with it: transfer).
- The image-scaling camouflage attack (Xiao et al. 2019) against a victim's cv2.resize.
- Gaussian and salt-and-pepper noise baselines.

Images are uint8, grey (h, w) or colour (h, w, c); results are new arrays (inputs are never modified).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from emotion_perception.core.faces import FaceBox
from emotion_perception.models.crops import DEFAULT_MARGIN, crop_square

ATTACKS = ("eye_boxes", "jaw_box", "fgsm", "pgd", "scaling", "gaussian", "salt_pepper")
FILLS = ("black", "white", "mean", "noise")
INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC,
}
# 68-point scheme: points 36-41 are the eye on the image's left (the subject's right), 42-47 the other one;
# 4-12 run along the lower jaw from below one cheek over the chin to below the other.
EYE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
JAW_POINTS = tuple(range(4, 13))
DEFAULT_EPSILON = {"fgsm": 0.01, "pgd": 0.01, "gaussian": 0.05, "salt_pepper": 0.05}

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive


# --------------------------------------------------------------------------------------------- boxes


def landmark_box(points: np.ndarray, indices: Sequence[int], margin: float, shape: tuple[int, ...]) -> Box:
    """The rectangle around `points[indices]` grown by `margin` times the points' width on every side,
    clipped to an image of `shape`; (x0, y0, x1, y1) with exclusive x1/y1, never empty for in-image points."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    selected = np.asarray(points, np.float64)[list(indices)]
    if selected.shape[-1] != 2 or not np.all(np.isfinite(selected)):
        raise ValueError("landmarks must be finite (68, 2) points")
    (x_min, y_min), (x_max, y_max) = selected.min(axis=0), selected.max(axis=0)
    grow = margin * max(x_max - x_min, 1.0)
    h, w = shape[:2]
    x0 = int(np.clip(np.floor(x_min - grow), 0, w))
    y0 = int(np.clip(np.floor(y_min - grow), 0, h))
    x1 = int(np.clip(np.ceil(x_max + grow) + 1, 0, w))
    y1 = int(np.clip(np.ceil(y_max + grow) + 1, 0, h))
    return x0, y0, x1, y1


def eye_rectangles(points: np.ndarray, shape: tuple[int, ...], margin: float = 0.25) -> list[Box]:
    """Type A rectangles over both eyes; `margin` is in units of each eye's width."""
    return [landmark_box(points, eye, margin, shape) for eye in EYE_POINTS]


def jaw_rectangle(points: np.ndarray, shape: tuple[int, ...], margin: float = 0.05) -> Box:
    """Type B rectangle over the lower jaw and chin (points 4-12); `margin` is in units of its width."""
    return landmark_box(points, JAW_POINTS, margin, shape)


def fill_boxes(image: np.ndarray, boxes: Sequence[Box], fill: str = "black", seed: int = 0) -> np.ndarray:
    """A copy of `image` with every box painted: black, white, the image's mean (per channel) or uniform
    random noise (seeded)."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    out = _check_u8(image).copy()
    rng = np.random.default_rng(seed)
    mean = np.round(image.reshape(-1, *image.shape[2:]).mean(axis=0)).astype(np.uint8)
    for x0, y0, x1, y1 in boxes:
        region = out[y0:y1, x0:x1]
        if fill == "black":
            region[...] = 0
        elif fill == "white":
            region[...] = 255
        elif fill == "mean":
            region[...] = mean
        else:
            region[...] = rng.integers(0, 256, region.shape, dtype=np.uint8)
    return out


def apply_eye_boxes(
    image: np.ndarray, landmarks: np.ndarray, margin: float = 0.25, fill: str = "black", seed: int = 0
) -> np.ndarray:
    """Type A: both eyes of one face covered (landmarks (68, 2) in image pixels)."""
    return fill_boxes(image, eye_rectangles(landmarks, image.shape, margin), fill, seed)


def apply_jaw_box(
    image: np.ndarray, landmarks: np.ndarray, margin: float = 0.05, fill: str = "black", seed: int = 0
) -> np.ndarray:
    """Type B: the lower jaw and chin of one face covered."""
    return fill_boxes(image, [jaw_rectangle(landmarks, image.shape, margin)], fill, seed)


def poison_class(
    images: Sequence[np.ndarray], labels: Sequence[str], landmarks: np.ndarray, target: str,
    margin: float = 0.25, fill: str = "black", seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Type A poisoning: eye boxes on every image labelled `target` that has landmarks (rows of NaN mean no
    face); other images are returned as they are. Returns (images, boolean mask of the poisoned ones)."""
    if len(images) != len(labels) or len(images) != len(landmarks):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(landmarks)} landmark sets")
    if target not in set(labels):
        raise ValueError(f"no image is labelled {target!r}")
    out, poisoned = [], np.zeros(len(images), bool)
    for i, (image, label, points) in enumerate(zip(images, labels, landmarks)):
        if label == target and np.all(np.isfinite(points)):
            out.append(apply_eye_boxes(image, points, margin, fill, seed + i))
            poisoned[i] = True
        else:
            out.append(image)
    return out, poisoned


# --------------------------------------------------------------------------------------------- noise


def gaussian_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of standard deviation `sigma` on the [0, 1] pixel scale, clipped, seeded."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    image = _check_u8(image)
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255.0, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def salt_and_pepper(image: np.ndarray, amount: float, seed: int = 0) -> np.ndarray:
    """A fraction `amount` of the pixels set to black or white (half each on average), seeded; colour
    pixels change in all channels together."""
    if not 0 <= amount <= 1:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    out = _check_u8(image).copy()
    rng = np.random.default_rng(seed)
    hit = rng.random(image.shape[:2]) < amount
    white = rng.random(image.shape[:2]) < 0.5
    out[hit & white] = 255
    out[hit & ~white] = 0
    return out


# ------------------------------------------------------------------------------------- white-box attacks


class PixelModel(nn.Module):
    """A classifier that takes normalised input, wrapped to take [0, 1] pixels: logits = model((x - mean) / std)."""

    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model, self.mean, self.std = model, float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def pixel_model(model: nn.Module, header: dict) -> PixelModel:
    """The CNN of `load_cnn` (model, header) as a [0, 1]-pixel classifier in eval mode."""
    return PixelModel(model.eval(), header["mean"], header["std"]).eval()


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


# ------------------------------------------------------------------------- resizes as linear maps


def resize_matrix(n_in: int, n_out: int, interpolation: str) -> np.ndarray:
    """(n_out, n_in) matrix M with cv2.resize along one axis == M @ x (float images; separable resizes)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be >= 1, got {n_in} -> {n_out}")
    eye = np.eye(n_in, dtype=np.float32)
    return cv2.resize(eye, (n_in, n_out), interpolation=INTERPOLATIONS[interpolation]).astype(np.float64)


@dataclass(frozen=True)
class CropMap:
    """The linear map from a grey image to one face crop, as `face_crops.crop_face` computes it:
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


class ImageToCrops(nn.Module):
    """Differentiable: grey image (h, w) in [0, 1] -> its face crops (n, 1, s, s), through `CropMap`s."""

    def __init__(self, maps: Sequence[CropMap]) -> None:
        super().__init__()
        self.maps = list(maps)
        self._tensors = [
            (torch.as_tensor(m.rows), torch.as_tensor(m.cols), torch.as_tensor(m.left, dtype=torch.float32),
             torch.as_tensor(m.right, dtype=torch.float32))
            for m in self.maps
        ]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        crops = [
            left @ image.index_select(0, rows).index_select(1, cols) @ right.T
            for rows, cols, left, right in self._tensors
        ]
        return torch.stack(crops).unsqueeze(1)

    def mask(self, shape: tuple[int, int]) -> torch.Tensor:
        """1 on every pixel some crop reads, 0 elsewhere."""
        mask = torch.zeros(shape)
        for rows, cols, _, _ in self._tensors:
            mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1.0
        return mask


def attack_faces(
    gray: np.ndarray, boxes: Sequence[FaceBox], model: nn.Module, size: int, attack: str = "fgsm",
    epsilon: float = 0.01, labels: Sequence[int] | None = None, margin: float = DEFAULT_MARGIN,
    steps: int = 10, step_size: float | None = None, random_start: bool = True, seed: int = 0,
) -> np.ndarray:
    """FGSM or PGD against a [0, 1]-pixel CNN (`PixelModel`) that sees `size`-pixel crops of the face boxes,
    crafted on the full-resolution grey image itself: only pixels inside the crop squares change, by at most
    epsilon, and the perturbation survives the crop's resize exactly. Returns the attacked uint8 grey image,
    which the landmark pipeline can read too (transfer)."""
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be fgsm or pgd, got {attack!r}")
    gray = _check_u8(gray)
    if gray.ndim != 2:
        raise ValueError(f"expected a grey image, got shape {gray.shape}")
    if not boxes:
        return gray.copy()
    to_crops = ImageToCrops([CropMap.for_box(gray.shape, box, size, margin) for box in boxes])

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


# ------------------------------------------------------------------------------ image-scaling attack


def scaling_attack(
    source: np.ndarray, target: np.ndarray, interpolation: str = "linear", iterations: int = 200,
    tolerance: float = 0.25,
) -> np.ndarray:
    """Xiao et al. (2019) camouflage: the uint8 image closest to `source` (least squares) whose cv2.resize to
    the target's size with `interpolation` is `target`, within the pixel box [0, 255].

    The victim's resize is linear and separable, resize(A) = L @ A @ R.T, so the problem is a convex QP
    min ||A - S||^2 s.t. L A R^T = T, 0 <= A <= 255. It is solved by Dykstra's alternating projections
    between the affine set (closed form with the pseudo-inverses of L and R) and the box, until the largest
    target error is below `tolerance` grey levels or after `iterations` rounds. Grey or colour (channels
    attacked independently; a grey target serves every channel).
    """
    source, target = _check_u8(source), _check_u8(target)
    if target.ndim == 2 and source.ndim == 3:
        target = np.repeat(target[:, :, None], source.shape[2], axis=2)
    if source.ndim != target.ndim or source.shape[2:] != target.shape[2:]:
        raise ValueError(f"source {source.shape} and target {target.shape} have different channels")
    (height, width), (h, w) = source.shape[:2], target.shape[:2]
    if h > height or w > width:
        raise ValueError(f"target {w}x{h} is larger than the source {width}x{height}: the victim must downscale")
    left, right = resize_matrix(height, h, interpolation), resize_matrix(width, w, interpolation)
    # Only pixels in rows and columns the resize reads can matter; the solution leaves the others alone.
    rows, cols = np.flatnonzero(np.any(left, axis=0)), np.flatnonzero(np.any(right, axis=0))
    left, right = left[:, rows], right[:, cols]
    left_pinv, right_pinv = np.linalg.pinv(left), np.linalg.pinv(right)
    s = source.astype(np.float64).reshape(height, width, -1).transpose(2, 0, 1)
    t = target.astype(np.float64).reshape(h, w, -1).transpose(2, 0, 1)
    x = s[:, rows][:, :, cols]
    correction = np.zeros_like(x)
    for _ in range(iterations):
        error = left @ x @ right.T - t
        if np.abs(error).max() < tolerance:
            break
        y = x - left_pinv @ error @ right_pinv.T  # onto the affine set (no Dykstra correction needed)
        x = np.clip(y + correction, 0.0, 255.0)
        correction = y + correction - x
    out = s.copy()
    out[np.ix_(range(len(s)), rows, cols)] = np.round(x)
    return np.clip(out, 0, 255).transpose(1, 2, 0).reshape(source.shape).astype(np.uint8)


def resize_like_victim(image: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """What the victim computes: cv2.resize to (width, height) with the named interpolation."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    return cv2.resize(image, size, interpolation=INTERPOLATIONS[interpolation])


def image_quality(reference: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """PSNR (dB, data range 255; inf when identical) and SSIM of two uint8 images of one shape."""
    if reference.shape != image.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {image.shape}")
    same = np.array_equal(reference, image)
    psnr = float("inf") if same else float(peak_signal_noise_ratio(reference, image, data_range=255))
    side = min(reference.shape[:2])
    window = min(7, side if side % 2 else side - 1)
    ssim = float(structural_similarity(
        reference, image, data_range=255, win_size=window, channel_axis=2 if reference.ndim == 3 else None,
    ))
    return {"psnr": psnr, "ssim": ssim}


def scaling_quality(
    attacked: np.ndarray, source: np.ndarray, target: np.ndarray, interpolation: str
) -> dict[str, float]:
    """Both sides of the camouflage: full size vs the source, and after the victim's resize vs the target."""
    scaled = resize_like_victim(attacked, (target.shape[1], target.shape[0]), interpolation)
    if target.ndim == 2 and scaled.ndim == 3:
        target = np.repeat(target[:, :, None], scaled.shape[2], axis=2)
    full, small = image_quality(source, attacked), image_quality(target, scaled)
    return {"source_psnr": full["psnr"], "source_ssim": full["ssim"],
            "target_psnr": small["psnr"], "target_ssim": small["ssim"]}


# ---------------------------------------------------------------------------------------- helpers


def change_size(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """L-inf and L2 norms of the change on the [0, 1] pixel scale."""
    delta = (after.astype(np.float64) - before.astype(np.float64)) / 255.0
    return {"linf": float(np.abs(delta).max(initial=0.0)), "l2": float(np.sqrt(np.sum(delta**2)))}


def _check_u8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a non-empty uint8 grey or colour image, got {type(image).__name__} {shape}")
    return image
