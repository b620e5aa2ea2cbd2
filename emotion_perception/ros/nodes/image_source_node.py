"""`image_source_node`: publishes `image` (sensor_msgs/Image) from a folder, video, V4L2 camera or ROS 2 bag.

Labelled sources (an image folder with `<class>/<image>` folders or a manifest.csv, a bag with a
`ground_truth/emotion` topic) also publish `ground_truth/emotion` (std_msgs/String, JSON: stamp, label,
subject, file) with the stamp of the image it belongs to. Folders, videos and cameras are published at
`rate` frames/s and stamped with the node's clock; bags are replayed on their recorded timeline scaled
by `rate_factor`, with their original header stamps. ROS plumbing only: reading is in `sources.py`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from emotion_perception.core.errors import SourceError
from emotion_perception.core.params import specs_by_name
from emotion_perception.core.stream import FrameSizeWatch
from emotion_perception.data.bags import GROUND_TRUTH
from emotion_perception.data.sources import (
    DEMO_FRAMES,
    Frame,
    ground_truth_record,
    open_source,
    to_encoding,
)
from emotion_perception.ros.env import shm_segment_bytes
from emotion_perception.ros.params import SOURCE_NODE_PARAMS
from emotion_perception.ros.plumbing import declare_parameters, image_message, run_node

NODE_NAME = "image_source_node"
EXIT_SOURCE_FAILED = 1


class ImageSourceNode(Node):
    """Publishes the frames of one source on a steady-clock schedule, prefetching the next frame."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = declare_parameters(self, SOURCE_NODE_PARAMS)
        self.is_bag = self.params["source_type"] == "bag"
        source = str(self.params["source"]) or (str(DEMO_FRAMES) if self.params["source_type"] == "folder" else "")
        self.frames: Iterator[Frame] = open_source(
            str(self.params["source_type"]), source, loop=bool(self.params["loop"]),
            bag_topic=str(self.params["bag_topic"]), on_skip=self.get_logger().warning,
        )
        self.exit_code = 0
        self.next_frame = self._read_next()
        if self.next_frame is None:
            raise SourceError(f"{source}: no readable frame")
        reliability = ReliabilityPolicy.RELIABLE if self.params["qos_reliability"] == "reliable" \
            else ReliabilityPolicy.BEST_EFFORT
        self.image_pub = self.create_publisher(Image, "image", QoSProfile(depth=5, reliability=reliability))
        # transient local: a scorer that subscribes late still receives the last 100 records
        self.truth_pub = self.create_publisher(String, GROUND_TRUTH, QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.published = 0
        self.size_watch = FrameSizeWatch(shm_segment_bytes())
        self.finished = False
        self.announced_wait = False
        self.base_wall_ns = time.monotonic_ns()  # due time of the frame at base_offset_ns (bags)
        self.base_offset_ns = self.next_frame.offset_ns
        self.due_ns = self.base_wall_ns
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.timer = self.create_timer(0.001, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"publishing {self.params['source_type']} {source} on {self.image_pub.topic_name} "
            + (f"on the recorded timeline x{self.params['rate_factor']}" if self.is_bag
               else f"at {self.params['rate']} frames/s")
            + (" (looping)" if self.params["loop"] else ""))

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        specs = specs_by_name(SOURCE_NODE_PARAMS)
        problems = [
            specs[p.name].check(p.value) or (None if specs[p.name].tunable else
                                             f"{p.name} cannot change at run time; restart the node")
            for p in parameters if p.name in specs
        ]
        if any(problems):
            return SetParametersResult(successful=False, reason="; ".join(filter(None, problems)))
        for parameter in parameters:
            if parameter.name == "rate_factor" and self.next_frame is not None:
                # the frame now due keeps its time; the rest of the timeline is rescaled from there
                self.base_wall_ns, self.base_offset_ns = self.due_ns, self.next_frame.offset_ns
            if parameter.name in self.params:
                self.params[parameter.name] = parameter.value
        return SetParametersResult(successful=True)

    def _read_next(self) -> Frame | None:
        try:
            return next(self.frames, None)
        except SourceError as error:
            self.get_logger().error(str(error))
            self.exit_code = EXIT_SOURCE_FAILED
            return None

    def _tick(self) -> None:
        now = time.monotonic_ns()
        if self.published == 0 and self._waiting_for_subscribers():
            self.base_wall_ns = self.due_ns = now + 50_000_000
        if self.finished or self.next_frame is None or now < self.due_ns:
            self._schedule(now)
            return
        self._publish(self.next_frame)
        self.exit_code = 0
        self.next_frame = self._read_next()
        if self.next_frame is None:
            self._finish()
            return
        if self.is_bag:
            delay = (self.next_frame.offset_ns - self.base_offset_ns) / float(self.params["rate_factor"])
            self.due_ns = self.base_wall_ns + int(delay)
        else:  # keep the rate without bursts after a stall
            self.due_ns = max(self.due_ns + int(1e9 / float(self.params["rate"])), now)
        self._schedule(time.monotonic_ns())

    def _waiting_for_subscribers(self) -> bool:
        wanted = int(self.params["wait_for_subscribers"])
        scorer = bool(self.params["wait_for_scorer"])
        if self.image_pub.get_subscription_count() >= wanted and (
                not scorer or self.truth_pub.get_subscription_count() > 0):
            return False
        if not self.announced_wait:
            self.get_logger().info(f"waiting for {wanted} subscriber(s) on {self.image_pub.topic_name}"
                                   + (f" and a scorer on {self.truth_pub.topic_name}" if scorer else ""))
            self.announced_wait = True
        return True

    def _schedule(self, now: int) -> None:
        self.timer.timer_period_ns = max(self.due_ns - now, 100_000) if not self.finished else 3_600 * 10**9
        self.timer.reset()

    def _publish(self, frame: Frame) -> None:
        header = Header(frame_id=frame.frame_id or str(self.params["frame_id"]))
        if frame.stamp_ns is not None:
            header.stamp.sec, header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        else:
            header.stamp = self.get_clock().now().to_msg()
        encoding = str(self.params["encoding"])
        message = image_message(to_encoding(frame.image, encoding), header, encoding)
        warning = self.size_watch.check(len(message.data), f"frame {frame.file or self.published} "
                                        f"({message.width}x{message.height} {encoding})")
        if warning:
            self.get_logger().warning(warning)
        self.image_pub.publish(message)
        if frame.label is not None:
            stamp = message.header.stamp
            self.truth_pub.publish(String(data=json.dumps(ground_truth_record(stamp.sec, stamp.nanosec, frame))))
        self.published += 1

    def _finish(self) -> None:
        self.finished = True
        self.get_logger().info(f"source finished after {self.published} frames")
        self._schedule(0)

    def should_exit(self) -> bool:
        return self.finished and bool(self.params["exit_when_done"])

    def close(self, seconds: float = 2.0) -> None:
        """Give reliable subscribers the chance to receive the last frames before the node goes away."""
        if self.finished and rclpy.ok():
            for publisher in (self.image_pub, self.truth_pub):
                publisher.wait_for_all_acked(Duration(seconds=seconds))


def main(args: list[str] | None = None) -> int:
    return run_node(ImageSourceNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
