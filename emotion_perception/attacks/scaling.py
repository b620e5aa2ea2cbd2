"""The image-scaling camouflage attack (Xiao et al. 2019) against a victim's cv2.resize, the resizes as linear
maps it is built on, and the image quality on both sides of the camouflage."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from emotion_perception.attacks.pixels import check_u8

INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC,
}


def resize_matrix(n_in: int, n_out: int, interpolation: str) -> np.ndarray:
    """(n_out, n_in) matrix M with cv2.resize along one axis == M @ x (float images; separable resizes)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be >= 1, got {n_in} -> {n_out}")
    eye = np.eye(n_in, dtype=np.float32)
    return cv2.resize(eye, (n_in, n_out), interpolation=INTERPOLATIONS[interpolation]).astype(np.float64)

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
    source, target = check_u8(source), check_u8(target)
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


def scaling_camouflage(
    gray: np.ndarray, target: np.ndarray, factor: int, interpolation: str
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The image-scaling attack on a camera that sees `gray` at `factor`x: (what the victim sees after shrinking
    with `interpolation`, the camouflaged camera image, its quality), the view being `target` at `gray`'s size."""
    h, w = gray.shape
    source = cv2.resize(gray, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC)
    small_target = cv2.resize(target, (w, h), interpolation=cv2.INTER_AREA)
    attacked = scaling_attack(source, small_target, interpolation)
    view = resize_like_victim(attacked, (w, h), interpolation)
    quality = image_quality(source, attacked)
    return view, attacked, {"source_psnr": quality["psnr"],
                            "target_linf": float(np.abs(view.astype(int) - small_target).max())}


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
