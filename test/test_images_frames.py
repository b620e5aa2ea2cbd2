"""Image files and raw camera frames of every kind -> uint8 grey, with clear errors for bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from face_images import astronaut_bgr

from emotion_perception.core.errors import FrameError, ImageError
from emotion_perception.core.frames import decode_frame, encode_frame, frame_to_bgr, frame_to_gray
from emotion_perception.core.images import read_gray, to_gray_u8


def test_read_gray_handles_colour_grey_16bit_and_alpha(tmp_path: Path):
    bgr = astronaut_bgr()[:64, :64]
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "colour.png"), bgr)
    cv2.imwrite(str(tmp_path / "grey.png"), expected)
    cv2.imwrite(str(tmp_path / "deep.png"), expected.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "alpha.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    for name in ("colour", "grey", "deep", "alpha"):
        grey = read_gray(tmp_path / f"{name}.png")
        assert grey.dtype == np.uint8 and grey.shape == (64, 64)
        assert np.abs(grey.astype(int) - expected).max() <= 1, name


def test_unreadable_files_name_the_path(tmp_path: Path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path, reason in ((empty, "empty file"), (text, "not a readable image"), (tmp_path / "x.png", "no such")):
        with pytest.raises(ImageError, match=reason) as error:
            read_gray(path)
        assert path.name in str(error.value)


def test_to_gray_rejects_empty_and_odd_arrays():
    with pytest.raises(ImageError, match="empty"):
        to_gray_u8(np.zeros((0, 10), np.uint8))
    with pytest.raises(ImageError, match="channel"):
        to_gray_u8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        to_gray_u8(np.full((4, 4), np.nan))
    assert to_gray_u8(np.ones((4, 4), np.float32)).max() == 255


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16", "16UC1", "bgr8", "8UC3", "rgb8", "bgra8", "rgba8"])
def test_every_supported_encoding_decodes_to_the_same_grey(encoding):
    bgr = astronaut_bgr()[100:160, 150:230]
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    pixels = {
        "mono8": grey, "8UC1": grey, "mono16": grey.astype(np.uint16) * 257, "16UC1": grey.astype(np.uint16) * 257,
        "bgr8": bgr, "8UC3": bgr, "rgb8": bgr[:, :, ::-1], "bgra8": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        "rgba8": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
    }[encoding]
    data = np.ascontiguousarray(pixels)
    out = frame_to_gray(encoding, data.shape[0], data.shape[1], data.strides[0], data.tobytes())
    assert np.abs(out.astype(int) - grey).max() <= 1
    colour = frame_to_bgr(encoding, data.shape[0], data.shape[1], data.strides[0], data.tobytes())
    assert colour.shape == (*grey.shape, 3)


def test_padded_rows_and_big_endian_16_bit():
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4) * 4000
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = grey.astype(">u2").view(np.uint8).reshape(3, 8)
    pixels, _ = decode_frame("mono16", 3, 4, 10, padded.tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(pixels, grey)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (("yuv422", 2, 2, 4, b"\x00" * 8), "unsupported encoding"),
        (("mono8", 0, 0, 0, b""), "empty frame"),
        (("bgr8", 2, 2, 4, b"\x00" * 8), "step 4 is smaller"),
        (("mono8", 2, 2, 2, b"\x00" * 5), "data holds 5 bytes"),
        (("mono8", 5000, 5000, 5000, b""), "exceeds the limit"),
    ],
)
def test_inconsistent_frames_are_rejected_with_the_cause(fields, reason):
    encoding, height, width, step, data = fields
    with pytest.raises(FrameError, match=reason):
        decode_frame(encoding, height, width, step, data, max_pixels=4000 * 4000)


def test_encode_decode_roundtrip():
    bgr = astronaut_bgr()[:30, :40]
    encoding, height, width, step, data = encode_frame(bgr)
    assert encoding == "bgr8"
    np.testing.assert_array_equal(frame_to_bgr(encoding, height, width, step, data), bgr)
    with pytest.raises(FrameError):
        encode_frame(bgr.astype(np.float32))
