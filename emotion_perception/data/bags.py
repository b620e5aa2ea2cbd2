"""ROS 2 bags of labelled face images, read and written with `rosbags` (no ROS installation needed).

A dataset bag (rosbag2 version 9, sqlite3 or mcap storage, ROS 2 Jazzy message definitions, so that
`ros2 bag play` and Foxglove read it) holds `sensor_msgs/msg/Image` frames on `/image` and, for every
labelled frame, a `std_msgs/msg/String` on `/ground_truth/emotion` with the JSON record
`{"stamp": {"sec", "nanosec"}, "label", "subject", "file"}` stamped like its frame. `image_source_node`
replays such a bag; `bag evaluate` classifies its frames offline and writes a results bag.

Bags are written into a hidden folder beside the destination and renamed into place when complete;
a failure removes them, so a bag path never holds half a bag. Every problem with a bag being read
(missing, corrupt or truncated, no such topic, wrong message type, undecodable frame) raises `BagError`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.errors import BagError, FrameError, SourceError
from emotion_perception.core.faces import upscale_factor
from emotion_perception.core.frames import decode_frame
from emotion_perception.data.sources import folder_frames

IMAGE_TOPIC = "/image"
GROUND_TRUTH_TOPIC = "/ground_truth/emotion"
EMOTION_TOPIC = "/emotion"
DETAIL_TOPIC = "/emotion/detail"
IMAGE_TYPE = "sensor_msgs/msg/Image"
STRING_TYPE = "std_msgs/msg/String"
STORAGES = ("sqlite3", "mcap")
ENCODINGS = ("auto", "bgr8", "mono8")
SMALL_SIDE = 100  # images smaller than this are upscaled like FaceDetector does for face crops



@cache
def typestore() -> Any:
    """ROS 2 Jazzy message definitions (also those of Humble for Image and String)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _storage_plugin(storage: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGES)}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """(sec, nanosec) of a time in nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return sec, nanosec


def stamp_record(stamp_ns: int) -> dict[str, int]:
    sec, nanosec = split_ns(stamp_ns)
    return {"sec": sec, "nanosec": nanosec}


# ------------------------------------------------------------------------------------------------ writing


@contextmanager
def staged_path(out: str | Path) -> Iterator[Path]:
    """A path to write a bag (or folder) at, moved to `out` when the block ends without error.

    `out` must not exist. The work happens in a hidden folder beside it, removed on any failure.
    """
    out = Path(out)
    if out.exists():
        raise BagError(f"{out}: already exists; choose a new path (nothing was written)")
    if not out.parent.is_dir():
        raise BagError(f"{out.parent}: no such folder")
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage / out.name
        (stage / out.name).rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


class BagWriter:
    """Messages into a version-9 rosbag2 at `path` (which must not exist yet); use as a context manager."""

    def __init__(self, path: Path, storage: str) -> None:
        from rosbags.rosbag2 import Writer

        self._writer = Writer(path, version=9, storage_plugin=_storage_plugin(storage))
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def write(self, topic: str, message: Any, timestamp_ns: int) -> None:
        """Serialise and write one message; its topic's connection is added on first use.

        Ground truth is offered reliable + transient local (depth 100) as image_source_node offers it, so
        that `ros2 bag play` serves scorer_node's transient-local subscription too."""
        msgtype = message.__msgtype__
        connection = self._connections.get(topic)
        if connection is None:
            qos = [latched_qos()] if topic == GROUND_TRUTH_TOPIC else []
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore(), offered_qos_profiles=qos)
            self._connections[topic] = connection
        self._writer.write(connection, int(timestamp_ns), typestore().serialize_cdr(message, msgtype))


def latched_qos() -> Any:
    """Reliable, transient local, keep last 100: the QoS of image_source_node's ground truth."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=100, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=never, lifespan=never,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
               avoid_ros_namespace_conventions=False)


def header(stamp_ns: int, frame_id: str) -> Any:
    types = typestore().types
    sec, nanosec = split_ns(stamp_ns)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def image_message(pixels: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags sensor_msgs/Image of uint8 grey (mono8) or BGR (bgr8) pixels."""
    pixels = np.ascontiguousarray(pixels)
    encoding = "mono8" if pixels.ndim == 2 else "bgr8"
    return typestore().types[IMAGE_TYPE](
        header=header(stamp_ns, frame_id), height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
        is_bigendian=0, step=pixels.strides[0], data=pixels.reshape(-1).view(np.uint8))


def string_message(text: str) -> Any:
    return typestore().types[STRING_TYPE](data=text)


@dataclass
class DatasetBagSummary:
    """What `write_dataset_bag` wrote."""

    frames: int
    labelled: int
    skipped: list[str]
    upscaled: int
    start_ns: int
    end_ns: int


def prepare_pixels(image_bgr: np.ndarray, encoding: str, upscale: bool) -> tuple[np.ndarray, bool]:
    """Pixels as written: grey or BGR per `encoding` ("auto": grey when the image has no colour), and
    small face crops upscaled by FaceDetector's factor so that a camera-frame detector finds the face."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    if encoding == "mono8" or (encoding == "auto" and
                               np.array_equal(image_bgr[:, :, 0], image_bgr[:, :, 1])
                               and np.array_equal(image_bgr[:, :, 1], image_bgr[:, :, 2])):
        pixels = grey
    else:
        pixels = image_bgr
    factor = upscale_factor(grey, SMALL_SIDE) if upscale else 1
    if factor > 1:
        size = (pixels.shape[1] * factor, pixels.shape[0] * factor)
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC)
    return pixels, factor > 1


def write_dataset_bag(
    root: str | Path, out: str | Path, fps: float = 30.0, storage: str = "mcap", *,
    start_ns: int = 1_700_000_000_000_000_000, encoding: str = "auto", upscale: bool = True,
    frame_id: str = "camera", progress: Callable[[int], None] | None = None,
) -> DatasetBagSummary:
    """A bag of the images of a dataset folder (`<class>/<image>` or manifest.csv, see `sources.scan_folder`).

    Frame i is stamped `start_ns + i / fps` (header stamp and bag time alike). Unreadable images are
    skipped (listed in the summary); a folder with no readable image, like any write failure, leaves
    nothing at `out`.
    """
    if not fps > 0:
        raise BagError(f"fps must be > 0, got {fps}")
    if encoding not in ENCODINGS:
        raise BagError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    skipped: list[str] = []
    try:
        frames = folder_frames(root, skipped.append)
    except SourceError as error:
        raise BagError(str(error)) from None
    _storage_plugin(storage)
    count = labelled = upscaled = 0
    stamp = start_ns
    with staged_path(out) as path, BagWriter(path, storage) as writer:
        for frame in frames:
            stamp = start_ns + round(count * 1e9 / fps)
            pixels, enlarged = prepare_pixels(frame.image, encoding, upscale)
            writer.write(IMAGE_TOPIC, image_message(pixels, stamp, frame_id), stamp)
            if frame.label is not None:
                record = {"stamp": stamp_record(stamp), "label": frame.label, "subject": frame.subject,
                          "file": frame.file}
                writer.write(GROUND_TRUTH_TOPIC, string_message(json.dumps(record)), stamp)
                labelled += 1
            count += 1
            upscaled += enlarged
            if progress is not None:
                progress(count)
        if count == 0:
            raise BagError(f"{root}: no readable image ({len(skipped)} skipped); nothing was written")
    return DatasetBagSummary(count, labelled, skipped, upscaled, start_ns, stamp)


# ------------------------------------------------------------------------------------------------ reading


@dataclass
class BagFrame:
    """One image message of a bag: its header, the raw sensor_msgs/Image fields, and its ground truth."""

    stamp_ns: int
    frame_id: str
    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: bool
    data: np.ndarray
    truth: dict[str, Any] | None

    @property
    def header(self) -> Any:
        return header(self.stamp_ns, self.frame_id)

    def pixels(self) -> np.ndarray:
        """The frame as an (h, w) or (h, w, c) array; BagError for inconsistent fields."""
        try:
            return decode_frame(self.encoding, self.height, self.width, self.step, self.data,
                                self.is_bigendian)[0]
        except FrameError as error:
            raise BagError(f"frame at {self.stamp_ns} ns: {error}") from None


def _key(topic: str) -> str:
    return "/" + topic.strip().strip("/")


class BagReader:
    """Frames and ground truth of a rosbag2 (sqlite3 or mcap), checked when opened; a context manager.

    `image_topic`: the image topic (with or without its leading slash). Ground truth is read from
    `/ground_truth/emotion` where the bag has it (or from `truth_topic`).
    """

    def __init__(self, path: str | Path, image_topic: str = IMAGE_TOPIC, truth_topic: str = GROUND_TRUTH_TOPIC):
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as error:  # rosbags raises several types for damaged metadata or storage files
            raise BagError(f"{self.path}: not a readable ROS 2 bag ({_cause(error)})") from None
        try:
            self.image_connection = self._connection(image_topic, IMAGE_TYPE, required=True)
            self.truth_connection = self._connection(truth_topic, STRING_TYPE, required=False)
        except BaseException:
            self.close()
            raise

    @property
    def storage(self) -> str:
        return "mcap" if any(self.path.glob("*.mcap")) else "sqlite3"

    @property
    def frame_count(self) -> int:
        return self.image_connection.msgcount

    def _connection(self, topic: str, msgtype: str, required: bool) -> Any:
        found = [c for c in self._reader.connections if _key(c.topic) == _key(topic)]
        if not found:
            if not required:
                return None
            topics = ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in self._reader.connections)) or "none"
            raise BagError(f"{self.path}: no topic {_key(topic)}; the bag holds: {topics}")
        if found[0].msgtype != msgtype:
            raise BagError(f"{self.path}: topic {_key(topic)} holds {found[0].msgtype}, expected {msgtype}")
        return found[0]

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def _messages(self, connection: Any) -> Iterator[tuple[int, Any]]:
        """(bag time, deserialised message) of one connection; damage found while reading -> BagError."""
        store = typestore()
        iterator = self._reader.messages(connections=[connection])
        while True:
            try:
                item = next(iterator, None)
                if item is None:
                    return
                _, timestamp, raw = item
                message = store.deserialize_cdr(raw, connection.msgtype)
            except Exception as error:  # sqlite3, mcap and CDR errors of damaged or truncated files
                raise BagError(f"{self.path}: damaged or truncated bag: {_cause(error)} (topic "
                               f"{connection.topic})") from None
            yield timestamp, message

    def ground_truth(self) -> dict[int, dict[str, Any]]:
        """The ground-truth records by stamp in nanoseconds (empty without a ground-truth topic)."""
        if self.truth_connection is None:
            return {}
        truth = {}
        for timestamp, message in self._messages(self.truth_connection):
            try:
                record = json.loads(message.data)
                stamp = record["stamp"]
                truth[int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"])] = record
            except (ValueError, KeyError, TypeError) as error:
                raise BagError(f"{self.path}: ground-truth message at {timestamp} ns is not a record with a "
                               f"stamp ({_cause(error)})") from None
        return truth

    def frames(self) -> Iterator[BagFrame]:
        """The image messages in bag order, each with its ground-truth record (None where there is none)."""
        truth = self.ground_truth()
        for _, message in self._messages(self.image_connection):
            stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
            yield BagFrame(stamp, message.header.frame_id, message.encoding, int(message.height),
                           int(message.width), int(message.step), bool(message.is_bigendian),
                           np.asarray(message.data, dtype=np.uint8), truth.get(stamp))

    def strings(self, topic: str) -> list[tuple[int, str]]:
        """(bag time, text) of every std_msgs/String on `topic`."""
        connection = self._connection(topic, STRING_TYPE, required=True)
        return [(timestamp, message.data) for timestamp, message in self._messages(connection)]


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
