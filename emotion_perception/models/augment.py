"""Training augmentation of face crops for what differs between cameras, people and wards: geometry (flip, aspect
stretch, scale, small rotation, shift), light and optics (gamma, contrast, brightness, noise, blur, JPEG quality)
and occluders drawn from the landmarks (surgical masks, hands, glasses, boxes: `core.occlusion`). Seeded: the
same generator state gives the same batch."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from emotion_perception.core import occlusion
from emotion_perception.core.geometry import MIRROR


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations a training uses: `geometry` always with `camera` photometric and optical changes,
    `occlusion` the probability that a crop gets an occluder (needs the crops' landmarks)."""

    geometry: bool = True
    camera: bool = True
    occlusion: float = 0.0


def geometric(
    images: torch.Tensor,
    generator: torch.Generator,
    landmarks: torch.Tensor | None = None,
    stretch: float = 0.2,
    shift: float = 0.08,
    rotate_deg: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random left-right flip, per-axis stretch (scale e^U(-s, s)), small rotation and random crop (shift of
    up to `shift` of the side) of a batch (n, 1, s, s); borders repeat. Landmarks (n, 68, 2) in 0..1 of the
    crop, when given, follow the same transform (and the mirror point order on flipped faces)."""
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    flip = torch.rand(n, generator=generator) < 0.5
    sx = torch.exp(uniform(-stretch, stretch)) * torch.where(flip, -1.0, 1.0)
    sy = torch.exp(uniform(-stretch, stretch))
    angle = torch.deg2rad(uniform(-rotate_deg, rotate_deg))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output (normalised -1..1) coordinates to input coordinates: input = A @ output + t.
    a = torch.stack([torch.stack([cos * sx, -sin * sy], 1), torch.stack([sin * sx, cos * sy], 1)], 1)
    t = torch.stack([uniform(-2 * shift, 2 * shift), uniform(-2 * shift, 2 * shift)], 1)
    theta = torch.cat([a, t[:, :, None]], 2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if landmarks is None:
        return out, None
    inverse = torch.linalg.inv(a)
    points = (landmarks * 2 - 1 - t[:, None, :]) @ inverse.transpose(1, 2)
    points = (points + 1) / 2
    mirror = torch.as_tensor(MIRROR)
    points = torch.where(flip[:, None, None], points[:, mirror], points)
    return out, points.to(landmarks.dtype)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per crop of a (n, 1, s, s) batch on [0, 1]: gamma 0.7-1.4, contrast 0.7-1.3, brightness +-0.1, Gaussian noise
    up to sigma 0.03, and a blur (sigma 0.4-1.0 px) on a quarter of the crops; clipped to [0, 1]."""
    n = images.shape[0]
    gamma = torch.exp(_uniform(n, np.log(0.7), np.log(1.4), generator))[:, None, None, None]
    out = images.clamp(0, 1) ** gamma
    mean = out.mean(dim=(2, 3), keepdim=True)
    contrast = _uniform(n, 0.7, 1.3, generator)[:, None, None, None]
    brightness = _uniform(n, -0.1, 0.1, generator)[:, None, None, None]
    out = (out - mean) * contrast + mean + brightness
    sigma = _uniform(n, 0.0, 0.03, generator)[:, None, None, None]
    out = out + sigma * torch.randn(out.shape, generator=generator)
    blurred = torch.rand(n, generator=generator) < 0.25
    if blurred.any():
        radius = 2
        offsets = torch.arange(-radius, radius + 1, dtype=out.dtype)
        s = _uniform(int(blurred.sum()), 0.4, 1.0, generator)[:, None]
        kernel = torch.exp(-(offsets[None] ** 2) / (2 * s**2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        picked = out[blurred].transpose(0, 1)  # (1, k, s, s): one group per crop
        rows = F.conv2d(F.pad(picked, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :],
                        groups=len(kernel))
        cols = F.conv2d(F.pad(rows, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None],
                        groups=len(kernel))
        out = out.clone()
        out[blurred] = cols.transpose(0, 1)
    return out.clamp(0, 1)


def jpeg(crops: np.ndarray, rng: np.random.Generator, fraction: float = 0.25) -> np.ndarray:
    """A `fraction` of the uint8 crops (n, s, s) re-encoded as JPEG at quality 40-95."""
    out = crops.copy()
    for i in np.flatnonzero(rng.random(len(crops)) < fraction):
        ok, data = cv2.imencode(".jpg", crops[i], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        if ok:
            out[i] = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out


def occlude(crops: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Each uint8 crop (n, s, s) with probability `probability` gets an occluder of a random kind, placed from its
    landmarks (n, 68, 2; 0..1 of the crop; crops without landmarks are left as they are)."""
    out = crops.copy()
    size = crops.shape[-1]
    for i in np.flatnonzero(rng.random(len(crops)) < probability):
        if np.all(np.isfinite(landmarks[i])):
            kind = occlusion.KINDS[int(rng.integers(len(occlusion.KINDS)))]
            out[i] = occlusion.occlude(crops[i], landmarks[i] * size, kind, rng)
    return out


def augment_batch(crops: np.ndarray, landmarks: np.ndarray | None, settings: Augmentation,
                  generator: torch.Generator, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 crops (n, s, s) and their landmarks (or None) -> an augmented (n, 1, s, s) batch on [0, 1] and the
    landmarks moved with it."""
    if settings.occlusion > 0 and landmarks is not None:
        crops = occlude(crops, landmarks, rng, settings.occlusion)
    if settings.camera:
        crops = jpeg(crops, rng)
    images = torch.from_numpy(crops.astype(np.float32) / 255.0).unsqueeze(1)
    points = None if landmarks is None else torch.as_tensor(landmarks, dtype=torch.float32)
    if settings.geometry:
        images, points = geometric(images, generator, points)
    if settings.camera:
        images = photometric(images, generator)
    return images, points
