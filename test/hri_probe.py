"""A ROS4HRI test node, run by test_rep155.py in the overlay's environment (hri_msgs is there, not in the venv).

    hri_probe.py camera NAMESPACE    the astronaut on NAMESPACE/image, then frames without a face
    hri_probe.py upstream            an upstream face detector: /humans/faces/tracked and each face's cropped image

It listens to the REP-155 topics with subscribers typed with hri_msgs and prints one JSON document of what it
received: per topic the messages (stamp seconds, and the fields), and the publisher counts of the per-face topics
at the end.
"""

from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np
import rclpy
from face_images import astronaut_bgr, happy_frame
from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D
from ros_helpers import image_msg
from sensor_msgs.msg import Image

FACES = "/humans/faces"
PERIOD = 0.2  # s between frames


class Recorder:
    """Subscribes REP-155 topics as they come up and keeps what arrives."""

    def __init__(self, node) -> None:
        self.node = node
        self.received: dict[str, list[dict]] = {}
        self._subscribed: set[str] = set()

    def listen(self, msg_type: type, topic: str, fields: tuple[str, ...]) -> None:
        if topic in self._subscribed:
            return
        self._subscribed.add(topic)
        box = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, lambda m: box.append(
            {"sec": m.header.stamp.sec, "frame_id": m.header.frame_id,
             **{f: list(getattr(m, f)) if f == "ids" else getattr(m, f) for f in fields}}), 10)

    def listen_face(self, face: str, roi: bool) -> None:
        self.listen(Expression, f"{FACES}/{face}/expression", ("expression", "valence", "arousal", "confidence"))
        if roi:
            self.listen(NormalizedRegionOfInterest2D, f"{FACES}/{face}/roi", ("xmin", "ymin", "xmax", "ymax", "c"))


def spin_for(node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)


def wait_for_subscriber(node, publisher, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > end:
            raise SystemExit(f"nobody subscribed to {publisher.topic_name}")
        spin_for(node, 0.1)


def camera(node, recorder: Recorder, namespace: str) -> None:
    """12 frames of the astronaut (stamps 101..112), then 8 without a face (201..208)."""
    frames = node.create_publisher(Image, f"{namespace}/image", 10)
    recorder.listen(IdsList, f"{FACES}/tracked", ("ids",))
    wait_for_subscriber(node, frames)
    spin_for(node, 1.0)  # the node's publishers are discovered
    blank = np.full((480, 640, 3), 120, np.uint8)
    for stamp, image in [*((101 + i, happy_frame()) for i in range(12)), *((201 + i, blank) for i in range(8))]:
        frames.publish(image_msg(image, stamp, frame_id="head_camera"))
        for message in recorder.received[f"{FACES}/tracked"]:
            for face in message["ids"]:
                recorder.listen_face(face, roi=True)
        spin_for(node, PERIOD)


def upstream(node, recorder: Recorder) -> None:
    """Face `a1b2c` tracked with its cropped image (stamps 101..110), then it leaves and `d3e4f` comes (201..208)."""
    tracked = node.create_publisher(IdsList, f"{FACES}/tracked", 10)
    crop = cv2.resize(astronaut_bgr()[30:250, 120:320], (128, 128), interpolation=cv2.INTER_AREA)
    crops = {face: node.create_publisher(Image, f"{FACES}/{face}/cropped", 10) for face in ("a1b2c", "d3e4f")}
    for face in crops:
        recorder.listen_face(face, roi=False)
    wait_for_subscriber(node, tracked)  # the node listens
    recorder.listen(IdsList, f"{FACES}/tracked", ("ids",))  # to count its publishers: only this probe may publish it
    for face, stamps in (("a1b2c", range(101, 111)), ("d3e4f", range(201, 209))):
        for stamp in stamps:
            message = IdsList(ids=[face])
            message.header.stamp.sec, message.header.frame_id = stamp, "head_camera"
            tracked.publish(message)
            spin_for(node, 0.05)
            crops[face].publish(image_msg(crop, stamp, frame_id="head_camera"))
            spin_for(node, PERIOD)


def main(mode: str, namespace: str = "") -> None:
    rclpy.init()
    node = rclpy.create_node("hri_probe")
    recorder = Recorder(node)
    camera(node, recorder, namespace) if mode == "camera" else upstream(node, recorder)
    spin_for(node, 2.0)
    publishers = {topic: node.count_publishers(topic) for topic in recorder.received}
    print(json.dumps({"received": recorder.received, "publishers": publishers}))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
