"""ROS 2 bags of labelled face images, read and written with `rosbags` (no ROS installation needed).

A dataset bag (rosbag2 version 9, sqlite3 or mcap storage, ROS 2 Jazzy message definitions, so that
`ros2 bag play` and Foxglove read it) holds `sensor_msgs/msg/Image` frames on `/image` and, for every
labelled frame, a `std_msgs/msg/String` on `/ground_truth/emotion` with the JSON record
`{"stamp": {"sec", "nanosec"}, "label", "subject", "file"}` stamped like its frame. `image_source_node`
replays such a bag; `bag evaluate` classifies its frames offline and writes a results bag.

Bags are written into a hidden folder beside the destination and renamed into place when complete;
a failure removes them, so a bag path never holds half a bag. Every problem with a bag being read
(missing, corrupt or truncated, no such topic, wrong message type, undecodable frame) raises `BagError`;
readers that replay a bag (`bag_frames`) skip bad messages instead and report them.
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
from emotion_perception.core.frames import decode_frame, encode_frame, frame_to_bgr
from emotion_perception.data.sources import Frame, folder_frames, label_of

IMAGE_TOPIC = "/image"
GROUND_TRUTH = "ground_truth/emotion"  # the relative topic name the nodes publish and subscribe (remappable)
GROUND_TRUTH_TOPIC = f"/{GROUND_TRUTH}"  # as a bag of the root namespace holds it
EMOTION_TOPIC = "/emotion"
DETAIL_TOPIC = "/emotion/detail"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
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
    encoding, height, width, step, data = encode_frame(pixels)
    return typestore().types[IMAGE_TYPE](header=header(stamp_ns, frame_id), height=height, width=width,
                                         encoding=encoding, is_bigendian=0, step=step,
                                         data=np.frombuffer(data, np.uint8))


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
    """One image message of a bag: its header, the raw sensor_msgs/Image fields (a CompressedImage is decoded to
    bgr8), its time in the bag and its ground truth."""

    stamp_ns: int
    frame_id: str
    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: bool
    data: np.ndarray
    truth: dict[str, Any] | None
    bag_time_ns: int = 0

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

    def bgr(self) -> np.ndarray:
        """The frame as uint8 BGR; FrameError for inconsistent fields."""
        return frame_to_bgr(self.encoding, self.height, self.width, self.step, self.data, self.is_bigendian)


def _key(topic: str) -> str:
    return "/" + topic.strip().strip("/")


SkipHandler = Callable[[str], None]


class BagReader:
    """Frames and ground truth of a ROS 2 bag (sqlite3 or mcap), checked when opened; a context manager.

    `image_topic`: the image topic (sensor_msgs Image or CompressedImage, with or without its leading slash);
    empty: the bag's only image topic. Ground truth is read from `truth_topic` where the bag has it.
    """

    def __init__(self, path: str | Path, image_topic: str = "", truth_topic: str = GROUND_TRUTH_TOPIC) -> None:
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        try:
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except Exception as error:  # rosbags raises several types for damaged metadata or storage files
            raise BagError(f"{self.path}: not a readable ROS 2 bag ({_cause(error)})") from None
        try:
            self.image_connections = self._images(image_topic)
            self.truth_connection = self._connection(truth_topic)
        except BaseException:
            self.close()
            raise

    @property
    def storage(self) -> str:
        return "mcap" if any(self.path.glob("*.mcap")) else "sqlite3"

    @property
    def frame_count(self) -> int:
        return sum(c.msgcount for c in self.image_connections)

    def _holds(self) -> str:
        return ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in self._reader.connections)) or "no topics"

    def _images(self, topic: str) -> list[Any]:
        images = [c for c in self._reader.connections if c.msgtype in IMAGE_TYPES]
        if not topic:
            names = sorted({c.topic for c in images})
            if len(names) != 1:
                found = f"several image topics ({', '.join(names)}): choose one" if names else "no image topic"
                raise BagError(f"{self.path}: {found} (image_source_node's bag_topic, bag evaluate's --topic)")
            return images
        named = [c for c in self._reader.connections if _key(c.topic) == _key(topic)]
        if not named:
            raise BagError(f"{self.path}: no image topic {_key(topic)}; the bag holds: {self._holds()}")
        if named[0].msgtype not in IMAGE_TYPES:
            raise BagError(f"{self.path}: topic {_key(topic)} holds {named[0].msgtype}, expected "
                           f"{' or '.join(IMAGE_TYPES)}")
        return named

    def _connection(self, topic: str) -> Any:
        """The std_msgs/String connection of `topic` (or of `topic` in a namespace), or None where there is none."""
        found = [c for c in self._reader.connections if c.msgtype == STRING_TYPE
                 and (_key(c.topic) == _key(topic) or _key(c.topic).endswith(_key(topic)))]
        return min(found, key=lambda c: len(c.topic)) if found else None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def _messages(self, connections: list[Any], on_skip: SkipHandler | None) -> Iterator[tuple[Any, int, Any]]:
        """(connection, bag time, deserialised message); a damaged message raises BagError, or goes to `on_skip`
        and is left out when that is given."""
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                item = next(iterator, None)
                if item is None:
                    return
                connection, timestamp, raw = item
            except Exception as error:  # sqlite3 and mcap errors of damaged or truncated files
                raise BagError(f"{self.path}: damaged or truncated bag: {_cause(error)}") from None
            try:
                message = self._reader.deserialize(raw, connection.msgtype)
            except Exception as error:  # CDR errors of a damaged message
                if on_skip is None:
                    raise BagError(f"{self.path}: damaged message at {timestamp} ns on {connection.topic}: "
                                   f"{_cause(error)}") from None
                on_skip(f"skipped a message of {connection.topic} at {timestamp} ns ({_cause(error)})")
                continue
            yield connection, timestamp, message

    def ground_truth(self, on_skip: SkipHandler | None = None) -> dict[int, dict[str, Any]]:
        """The ground-truth records by stamp in nanoseconds (empty without a ground-truth topic); a record without
        a stamp raises BagError, or goes to `on_skip` when that is given."""
        if self.truth_connection is None:
            return {}
        truth = {}
        for _, timestamp, message in self._messages([self.truth_connection], on_skip):
            try:
                record = json.loads(message.data)
                stamp = record["stamp"]
                truth[int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"])] = record
            except (ValueError, KeyError, TypeError) as error:
                problem = f"ground-truth message at {timestamp} ns is not a record with a stamp ({_cause(error)})"
                if on_skip is None:
                    raise BagError(f"{self.path}: {problem}") from None
                on_skip(f"skipped a {problem}")
        return truth

    def frames(self, on_skip: SkipHandler | None = None) -> Iterator[BagFrame]:
        """The image messages in bag order, each with its ground-truth record (None where there is none)."""
        truth = self.ground_truth(on_skip)
        for connection, timestamp, message in self._messages(self.image_connections, on_skip):
            stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
            if connection.msgtype == COMPRESSED_TYPE:
                image = cv2.imdecode(np.asarray(message.data, dtype=np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    problem = f"undecodable compressed image (format {message.format!r}) at {timestamp} ns"
                    if on_skip is None:
                        raise BagError(f"{self.path}: {problem}")
                    on_skip(f"skipped an {problem} on {connection.topic}")
                    continue
                fields = ("bgr8", image.shape[0], image.shape[1], image.strides[0], False, image.reshape(-1))
            else:
                fields = (message.encoding, int(message.height), int(message.width), int(message.step),
                          bool(message.is_bigendian), np.asarray(message.data, dtype=np.uint8))
            yield BagFrame(stamp, message.header.frame_id, *fields, truth.get(stamp), timestamp)

    def strings(self, topic: str) -> list[tuple[int, str]]:
        """(bag time, text) of every std_msgs/String on `topic`."""
        connection = self._connection(topic)
        if connection is None:
            raise BagError(f"{self.path}: no {STRING_TYPE} topic {_key(topic)}; the bag holds: {self._holds()}")
        return [(timestamp, message.data) for _, timestamp, message in self._messages([connection], None)]


def bag_frames(path: str | Path, topic: str = "", on_skip: SkipHandler = lambda _: None) -> Iterator[Frame]:
    """One pass over the images of a ROS 2 bag as source `Frame`s (BGR, labels from its ground truth, its
    timeline); the bag is checked now (SourceError), bad messages go to `on_skip`."""
    try:
        reader = BagReader(path, topic, GROUND_TRUTH_TOPIC)
    except BagError as error:
        raise SourceError(str(error)) from None

    def frames() -> Iterator[Frame]:
        start: int | None = None
        with reader:
            for frame in reader.frames(on_skip):
                try:
                    image = frame.bgr()
                except FrameError as error:
                    on_skip(f"skipped a frame at {frame.bag_time_ns} ns ({error})")
                    continue
                start = frame.bag_time_ns if start is None else start
                record = frame.truth or {}
                yield Frame(image, label_of(record.get("label")), record.get("subject"),
                            record.get("file") or f"{Path(path).name}@{frame.bag_time_ns}", frame.stamp_ns,
                            frame.bag_time_ns - start, frame.frame_id)

    return frames()


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
