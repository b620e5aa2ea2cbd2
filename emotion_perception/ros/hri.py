"""REP-155 (ROS4HRI) faces of the classifier nodes, where `hri_msgs` is installed.

Out: `/humans/faces/tracked` (hri_msgs/IdsList, the ids of the faces followed), and per face
`/humans/faces/<id>/roi` (hri_msgs/NormalizedRegionOfInterest2D) and `/humans/faces/<id>/expression`
(hri_msgs/Expression), each with the camera image's header. A face's publishers are made when it appears and
destroyed when it is no longer followed.

In (`face_source: ros4hri`): the faces of an upstream ROS4HRI face detector, `/humans/faces/tracked` and each
tracked face's `cropped` or `aligned` image, with the upstream ids.

Plumbing only: the label -> expression mapping, the valence/arousal table and the ids are `core.expressions`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from emotion_perception.core.expressions import hri_expression, normalized_roi, valence_arousal
from emotion_perception.core.types import FacePrediction
from emotion_perception.ros.plumbing import NewestFrameWorker

try:
    from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D
except ImportError:  # no hri_msgs: the nodes run without the REP-155 topics
    Expression = IdsList = NormalizedRegionOfInterest2D = None

FACES = "/humans/faces"
QOS_DEPTH = 10


def available() -> bool:
    """Whether hri_msgs can be imported."""
    return Expression is not None


def expression_message(header: Any, prediction: FacePrediction) -> Any:
    """hri_msgs/Expression of a face: the label's expression, the scores' valence and arousal, the confidence."""
    valence, arousal = valence_arousal(prediction.scores)
    return Expression(header=header, expression=hri_expression(prediction.label), valence=float(valence),
                      arousal=float(arousal), confidence=float(prediction.confidence))


class FacesOut:
    """Publishes the REP-155 topics of faces. With `tracked` false (the ros4hri input mode: the upstream detector
    publishes the tracked list and the regions) only the expressions, of the faces `keep` was last given."""

    def __init__(self, node: Node, tracked: bool = True) -> None:
        self._node = node
        self._tracked = node.create_publisher(IdsList, f"{FACES}/tracked", QOS_DEPTH) if tracked else None
        self._faces: dict[str, dict[str, Any]] = {}  # id -> its publishers
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, header: Any, ids: Sequence[str], predictions: Sequence[FacePrediction],
                size: tuple[int, int] | None = None) -> None:
        """The faces of one image (ids and predictions in the same order); regions too when `size` (width, height)
        is given. With the tracked list, the faces not in `ids` are forgotten."""
        if self._tracked is not None:
            self._tracked.publish(IdsList(header=header, ids=list(ids)))
            self.keep(ids)
        with self._lock:
            for face, prediction in zip(ids, predictions):
                if face not in self._kept:  # it left while its image was being classified
                    continue
                publishers = self._publishers(face)
                if size is not None:
                    xmin, ymin, xmax, ymax = normalized_roi(prediction.box, *size)
                    publishers["roi"].publish(NormalizedRegionOfInterest2D(header=header, xmin=xmin, ymin=ymin,
                                                                           xmax=xmax, ymax=ymax, c=1.0))
                publishers["expression"].publish(expression_message(header, prediction))

    def keep(self, ids: Iterable[str]) -> None:
        """The faces now followed: the publishers of the others are destroyed."""
        with self._lock:
            self._kept = set(ids)
            for face in set(self._faces) - self._kept:
                for publisher in self._faces.pop(face).values():
                    self._node.destroy_publisher(publisher)

    def close(self) -> None:
        self.keep(())
        if self._tracked is not None:
            self._node.destroy_publisher(self._tracked)
            self._tracked = None

    def _publishers(self, face: str) -> dict[str, Any]:
        """A face's publishers, made on its first image (call with the lock held)."""
        if face not in self._faces:
            create = self._node.create_publisher
            self._faces[face] = {"expression": create(Expression, f"{FACES}/{face}/expression", QOS_DEPTH)}
            if self._tracked is not None:
                self._faces[face]["roi"] = create(NormalizedRegionOfInterest2D, f"{FACES}/{face}/roi", QOS_DEPTH)
        return self._faces[face]


class FacesIn:
    """The faces of an upstream ROS4HRI detector: follows `/humans/faces/tracked`, subscribes each tracked face's
    `image` (cropped or aligned) and hands the newest image of every face to `handle(face_id, image)` on a worker
    thread; `keep(ids)` hears the ids still tracked whenever the list changes.

    It stands in for the node's newest-frame worker: `received` counts face images, `dropped` those replaced by a
    newer image of the same face before they were processed, and `stop()` ends it."""

    def __init__(self, node: Node, image: str, qos: QoSProfile, handle: Callable[[str, Image], None],
                 on_error: Callable[[BaseException], None], keep: Callable[[set[str]], None]) -> None:
        self._node, self._image, self._qos = node, image, qos
        self._handle, self._on_error, self._keep = handle, on_error, keep
        self._lock = threading.Lock()
        self._pending: dict[str, Image] = {}
        self._faces: dict[str, Any] = {}  # id -> its image subscription
        self.received = 0
        self.dropped = 0
        self._worker = NewestFrameWorker(lambda _: self._drain(), on_error)
        self._tracked = node.create_subscription(IdsList, f"{FACES}/tracked", self._on_tracked, QOS_DEPTH)

    @property
    def topic(self) -> str:
        return f"{FACES}/tracked and {FACES}/<id>/{self._image}"

    def stop(self) -> None:
        self._worker.stop()
        self._node.destroy_subscription(self._tracked)
        self._follow(set())

    def _on_tracked(self, msg: Any) -> None:
        self._follow(set(msg.ids))

    def _follow(self, ids: set[str]) -> None:
        if ids == set(self._faces):
            return
        for face in set(self._faces) - ids:
            self._node.destroy_subscription(self._faces.pop(face))
            with self._lock:
                self._pending.pop(face, None)
        for face in ids - set(self._faces):
            self._faces[face] = self._node.create_subscription(
                Image, f"{FACES}/{face}/{self._image}", lambda msg, face=face: self._on_image(face, msg), self._qos)
        self._keep(ids)

    def _on_image(self, face: str, msg: Image) -> None:
        with self._lock:
            self.received += 1
            self.dropped += face in self._pending
            self._pending[face] = msg
        self._worker.offer(True)

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for face, msg in pending.items():
            try:
                self._handle(face, msg)
            except Exception as error:  # one bad face image must not cost the others theirs
                self._on_error(error)
