"""Raw camera frames (sensor_msgs/Image fields) <-> numpy arrays, with every inconsistency reported.

No ROS import: nodes pass the message fields in, so this runs and tests without ROS.
"""

from __future__ import annotations

import numpy as np

from emotion_perception.core.errors import FrameError
from emotion_perception.core.images import to_bgr_u8, to_gray_u8

# encoding -> (channels, dtype, channel order of colour data)
ENCODINGS: dict[str, tuple[int, np.dtype, str]] = {
    "mono8": (1, np.dtype(np.uint8), "bgr"),
    "8UC1": (1, np.dtype(np.uint8), "bgr"),
    "mono16": (1, np.dtype(np.uint16), "bgr"),
    "16UC1": (1, np.dtype(np.uint16), "bgr"),
    "bgr8": (3, np.dtype(np.uint8), "bgr"),
    "8UC3": (3, np.dtype(np.uint8), "bgr"),
    "rgb8": (3, np.dtype(np.uint8), "rgb"),
    "bgra8": (4, np.dtype(np.uint8), "bgr"),
    "rgba8": (4, np.dtype(np.uint8), "rgb"),
}
MAX_PIXELS = 8192 * 8192


def check_frame(encoding: str, height: int, width: int, step: int, size: int, max_pixels: int = MAX_PIXELS) -> None:
    """FrameError, naming the cause, unless the fields of a frame (`size`: the bytes of its data) are consistent and
    its encoding supported; reads no pixel, so a node can check every frame as it arrives."""
    if encoding not in ENCODINGS:
        raise FrameError(f"unsupported encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}")
    channels, dtype, _ = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise FrameError(f"empty frame ({width}x{height})")
    if height * width > max_pixels:
        raise FrameError(f"frame {width}x{height} exceeds the limit of {max_pixels} pixels")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise FrameError(f"step {step} is smaller than width*channels*bytes = {row_bytes}")
    if size != step * height:
        raise FrameError(f"data holds {size} bytes, step*height = {step * height}")


def decode_frame(
    encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray,
    is_bigendian: bool = False, max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, str]:
    """The frame as an (h, w) or (h, w, c) array view, and the channel order of colour frames."""
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    check_frame(encoding, height, width, step, buffer.size, max_pixels)
    channels, dtype, order = ENCODINGS[encoding]
    row_bytes = width * channels * dtype.itemsize
    rows = buffer.reshape(height, step)[:, :row_bytes]
    pixels = rows.copy().view(dtype.newbyteorder(">" if is_bigendian else "<")) if dtype.itemsize > 1 \
        else rows
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape).astype(dtype, copy=False), order


def frame_to_gray(
    encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray,
    is_bigendian: bool = False, max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The frame as contiguous uint8 grey, ready for the face pipeline."""
    pixels, order = decode_frame(encoding, height, width, step, data, is_bigendian, max_pixels)
    return to_gray_u8(pixels, order=order)


def frame_to_bgr(
    encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray,
    is_bigendian: bool = False, max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The frame as uint8 BGR (for drawing debug images and for attacks that work on colour)."""
    pixels, order = decode_frame(encoding, height, width, step, data, is_bigendian, max_pixels)
    return to_bgr_u8(pixels, order=order)


def encode_frame(image: np.ndarray, encoding: str | None = None) -> tuple[str, int, int, int, bytes]:
    """(encoding, height, width, step, data) of a uint8 array: mono8 for grey and bgr8 for 3 channels by default,
    or any 8-bit `encoding` whose channel count the array has (the pixels are taken as they are)."""
    image = np.ascontiguousarray(image)
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0
    if encoding is None:
        encoding = {1: "mono8", 3: "bgr8"}.get(channels, "")
    expected = ENCODINGS.get(encoding)
    if image.dtype != np.uint8 or expected is None or expected[1] != np.uint8 or expected[0] != channels:
        raise FrameError(f"cannot encode {image.dtype} {image.shape} pixels as {encoding or 'mono8/bgr8'}")
    height, width = image.shape[:2]
    return encoding, height, width, image.strides[0], image.tobytes()
