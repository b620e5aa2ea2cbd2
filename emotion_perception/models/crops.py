"""Square grey face crops for the CNNs, cut around the boxes of the landmark path's face detector, plus
batch augmentation (flip, stretch, random crop) for training. Crops live in memory only."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from emotion_perception.core.faces import FaceBox
from emotion_perception.core.geometry import MIRROR

DEFAULT_MARGIN = 0.1


def crop_square(box: FaceBox, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """(left, top, side) of the square crop around a face box: the box's longer side plus `margin` of it on
    each side, centred on the box. Whole-image boxes (face crops where the detector found nothing) get no
    margin: the image already is the face."""
    width, height = box.right - box.left + 1, box.bottom - box.top + 1
    grow = 0.0 if box.source == "whole_image" else margin
    side = max(width, height) * (1 + 2 * grow)
    cx, cy = box.left + width / 2, box.top + height / 2
    return cx - side / 2, cy - side / 2, side


def crop_face(gray: np.ndarray, box: FaceBox, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The (size, size) uint8 crop of one face; parts outside the image repeat its border pixels."""
    left, top, side = crop_square(box, margin)
    x0, y0, n = round(left), round(top), max(round(side), 1)
    x1, y1 = x0 + n, y0 + n
    h, w = gray.shape[:2]
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    region = gray[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    shrinking = region.shape[0] > size
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def crop_faces(gray: np.ndarray, boxes: list[FaceBox], size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """(n, size, size) uint8 crops of every box, in the order given."""
    if not boxes:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, box, size, margin) for box in boxes])


def landmarks_in_crop(points: np.ndarray, box: FaceBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Image-pixel landmarks (68, 2) -> coordinates in the crop of `box`, 0..1 across the crop."""
    left, top, side = crop_square(box, margin)
    return ((np.asarray(points, np.float64) - (left, top)) / side).astype(np.float32)


def landmarks_from_crop(points: np.ndarray, box: FaceBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The inverse of `landmarks_in_crop`: crop coordinates 0..1 -> image pixels."""
    left, top, side = crop_square(box, margin)
    return np.asarray(points, np.float64) * side + (left, top)


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    landmarks: torch.Tensor | None = None,
    stretch: float = 0.1,
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
