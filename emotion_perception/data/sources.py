"""Frame sources for `image_source_node`: image folders, video files, V4L2 cameras and ROS 2 bags.

No ROS import: every source is an iterator of `Frame`s (BGR pixels, ground-truth label where the source
has one, and the frame's place on the source's own timeline), so the node only schedules and publishes.
Opening a source checks it at once and raises `SourceError` with the cause; files that turn out to be
unreadable while iterating are reported through `on_skip` and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion_perception.core.errors import DatasetError, ImageError, SourceError
from emotion_perception.core.images import read_bgr
from emotion_perception.core.labels import EMOTIONS
from emotion_perception.data.datasets import IMAGE_SUFFIXES, read_manifest

SOURCE_TYPES: tuple[str, ...] = ("folder", "video", "camera", "bag")
OUTPUT_ENCODINGS: tuple[str, ...] = ("bgr8", "mono8", "rgb8")
DEMO_FRAMES = Path(__file__).resolve().parents[1] / "assets"

SkipHandler = Callable[[str], None]



@dataclass(frozen=True)
class Frame:
    """One frame: uint8 BGR pixels, its label/subject/file where known, and its source timing.

    `stamp_ns` and `frame_id` are the original header's (bags only); `offset_ns` the time since the
    source's first frame on its original timeline (bags, videos; monotonic across loops of a bag).
    """

    image: np.ndarray
    label: str | None = None
    subject: str | None = None
    file: str | None = None
    stamp_ns: int | None = None
    offset_ns: int = 0
    frame_id: str | None = None


def _ignore(_: str) -> None:
    """Default skip handler."""


# ---------------------------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class _Entry:
    path: Path
    label: str | None
    subject: str | None


def label_of(name: str | None) -> str | None:
    """An emotion label from a class folder or manifest entry; None when it is not one of EMOTIONS."""
    name = (name or "").strip().lower()
    return name if name in EMOTIONS else None


def scan_folder(root: str | Path) -> list[_Entry]:
    """The images of a folder in publishing order.

    With a `manifest.csv` (columns path,label and optionally subject): its rows in order. Otherwise the
    images directly in `root` and in its sub-folders (`<class>/<image>`), sorted by relative path; a
    sub-folder named after an emotion gives its images that label.
    """
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    manifest = root / "manifest.csv"
    if manifest.is_file():
        try:
            rows = read_manifest(manifest, required=("path",))
        except DatasetError as error:
            raise SourceError(str(error)) from None
        entries = [_Entry(root / row["path"], label_of(row.get("label")), (row.get("subject") or None))
                   for row in rows]
    else:
        candidates = [p for p in root.iterdir() if not p.name.startswith(".")]
        files = [p for p in candidates if p.is_file()]
        files += [p for folder in candidates if folder.is_dir() for p in folder.iterdir() if p.is_file()]
        entries = [
            _Entry(p, label_of(p.parent.name) if p.parent != root else None, None)
            for p in sorted(files, key=lambda p: p.relative_to(root).as_posix())
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ]
    if not entries:
        raise SourceError(f"{root}: no images found (expected image files, <class>/<image> or a manifest.csv)")
    return entries


def folder_frames(root: str | Path, on_skip: SkipHandler = _ignore) -> Iterator[Frame]:
    """One pass over an image folder (see `scan_folder`); unreadable files go to `on_skip`."""
    root = Path(root)
    entries = scan_folder(root)

    def frames() -> Iterator[Frame]:
        for entry in entries:
            try:
                image = read_bgr(entry.path)
            except ImageError as error:
                on_skip(f"skipped {error}")
                continue
            file = entry.path.relative_to(root).as_posix() if entry.path.is_relative_to(root) else str(entry.path)
            yield Frame(image, entry.label, entry.subject, file)

    return frames()


# ------------------------------------------------------------------------------------ videos and cameras


def _capture_frames(capture: cv2.VideoCapture, name: str, first: np.ndarray) -> Iterator[Frame]:
    try:
        image = first
        while image is not None:
            offset_ns = round(capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
            yield Frame(image, file=name, offset_ns=max(offset_ns, 0))
            ok, image = capture.read()
            if not ok:
                image = None
    finally:
        capture.release()


def video_frames(path: str | Path) -> Iterator[Frame]:
    """One pass over a video file read with OpenCV (FFmpeg); SourceError if it cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok or first is None:
        capture.release()
        raise SourceError(f"{path}: not a readable video (OpenCV could not decode a frame)")
    return _capture_frames(capture, path.name, first)


def camera_frames(device: str) -> Iterator[Frame]:
    """Frames from a V4L2 camera: `device` is an index ("0") or a device path ("/dev/video0")."""
    device = str(device).strip()
    target: int | str = int(device) if device.isdigit() else device
    if isinstance(target, str) and not Path(target).exists():
        raise SourceError(f"camera {device}: no such device")
    capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok or first is None:
        capture.release()
        raise SourceError(f"camera {device}: cannot open or read a frame (missing, busy or no permission)")
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
    return _capture_frames(capture, f"camera:{device}", first)


# ------------------------------------------------------------------------------------------ any source


def open_source(
    source_type: str, source: str, *, loop: bool = False, bag_topic: str = "", on_skip: SkipHandler = _ignore,
) -> Iterator[Frame]:
    """Frames of any source type, repeated when `loop` (a camera is endless anyway).

    The first pass is opened (and checked) now. Looped bags keep `offset_ns` increasing, one mean frame
    interval between the last frame of a pass and the first of the next.
    """
    if source_type not in SOURCE_TYPES:
        raise SourceError(f"unknown source type {source_type!r}; expected one of {', '.join(SOURCE_TYPES)}")
    if not str(source).strip():
        raise SourceError(f"{source_type} source: the source parameter is empty (a path or a camera index)")

    def one_pass() -> Iterator[Frame]:
        if source_type == "folder":
            return folder_frames(source, on_skip)
        if source_type == "video":
            return video_frames(source)
        if source_type == "camera":
            return camera_frames(source)
        from emotion_perception.data.bags import bag_frames  # rosbags is only needed for bag sources

        return bag_frames(source, bag_topic, on_skip)

    first = one_pass()
    if not loop or source_type == "camera":
        return first

    def looped() -> Iterator[Frame]:
        shift = 0
        frames = first
        while True:
            count, last = 0, 0
            for frame in frames:
                count, last = count + 1, frame.offset_ns
                yield frame if shift == 0 else _shifted(frame, shift)
            if count == 0:
                raise SourceError(f"{source}: no readable frame in a whole pass")
            shift += last + (last // (count - 1) if count > 1 else 33_333_333)
            frames = one_pass()

    return looped()


def _shifted(frame: Frame, shift_ns: int) -> Frame:
    return Frame(frame.image, frame.label, frame.subject, frame.file, frame.stamp_ns, frame.offset_ns + shift_ns,
                 frame.frame_id)


# ---------------------------------------------------------------------------------------- message data


def to_encoding(image_bgr: np.ndarray, encoding: str) -> np.ndarray:
    """BGR pixels as a contiguous array in a published encoding (bgr8, rgb8 or mono8)."""
    if encoding == "bgr8":
        return np.ascontiguousarray(image_bgr)
    if encoding == "rgb8":
        return np.ascontiguousarray(image_bgr[:, :, ::-1])
    if encoding == "mono8":
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    raise SourceError(f"unsupported output encoding {encoding!r}; expected one of {', '.join(OUTPUT_ENCODINGS)}")


def ground_truth_record(sec: int, nanosec: int, frame: Frame) -> dict:
    """The JSON record published on `ground_truth/emotion` for a labelled frame."""
    return {"stamp": {"sec": int(sec), "nanosec": int(nanosec)}, "label": frame.label,
            "subject": frame.subject, "file": frame.file}
