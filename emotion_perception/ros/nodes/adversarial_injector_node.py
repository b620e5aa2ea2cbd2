"""`adversarial_injector_node`: subscribes `image`, publishes `image_attacked` (same header) and `attack/info`
(std_msgs/String, JSON: attack, params, stamp, frame_id, applied, reason, linf, l2, faces, processing_ms).

With `attack:=none` (or on frames the `fraction` draw skips) the incoming message is republished as it is,
bit-exact. Attacked frames keep their encoding (8-bit encodings; others pass through with a reason).
ROS plumbing only: the attacks are in `emotion_perception.attacks`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from emotion_perception.attacks.injector import FrameAttacker, FrameResult, Resources, info_record
from emotion_perception.core.errors import FrameError, InjectorSetupError, ParameterError
from emotion_perception.core.frames import check_frame
from emotion_perception.core.stream import LostFrames
from emotion_perception.ros.params import INJECTOR_PARAMS
from emotion_perception.ros.plumbing import (
    NewestFrameWorker,
    ProcessingStats,
    declare_parameters,
    diagnostic_status,
    image_message,
    image_qos,
    parameter_guard,
    run_node,
    stamp_ns,
)

NODE_NAME = "adversarial_injector_node"


class AdversarialInjectorNode(Node):
    """Sits between the camera and the classifiers and attacks the frames on their way."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare_parameters(self, INJECTOR_PARAMS)
        self.resources = Resources()
        try:
            self.attacker = FrameAttacker(self.params, self.resources)
        except InjectorSetupError as error:
            raise ParameterError(str(error)) from None
        self.frames = 0
        self.stats = ProcessingStats()
        self.lost = LostFrames()
        self.last_input: float | None = None
        self.image_pub = self.create_publisher(Image, "image_attacked",
                                               QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self.info_pub = self.create_publisher(String, "attack/info", 50)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = parameter_guard(INJECTOR_PARAMS, lambda: True)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.worker = NewestFrameWorker(self._process, self._on_worker_error)
        self.subscription = None
        self.timer = self.create_timer(self.params["diagnostics_period"], self._publish_diagnostics)
        wanted = int(self.params["wait_for_subscribers"])
        if wanted:
            self.get_logger().info(f"waiting for {wanted} subscriber(s) on {self.image_pub.topic_name}")
        self.subscribe_timer = self.create_timer(0.05, self._subscribe_when_listened)

    def _subscribe_when_listened(self) -> None:
        """Subscribe the input once enough nodes listen on the output (wait_for_subscribers)."""
        if self.image_pub.get_subscription_count() < int(self.params["wait_for_subscribers"]):
            return
        self.destroy_timer(self.subscribe_timer)
        self.subscription = self.create_subscription(Image, "image", self._on_image,
                                                     image_qos(self.params["reliability"]))
        self.get_logger().info(f"attack {self.params['attack']}: {self.subscription.topic_name} -> "
                               f"{self.image_pub.topic_name}")

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate, then build the attacker for the new values (loading a CNN or target if needed)."""
        result = self.guard(parameters)
        if not result.successful:
            return result
        values = {**self.params, **{p.name: p.value for p in parameters if p.name in self.params}}
        try:
            attacker = FrameAttacker(values, self.resources)
        except InjectorSetupError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.params, self.attacker = values, attacker
        self.get_logger().info(f"attack {values['attack']} {json.dumps(attacker.params)}")
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image) -> None:
        """Frames that stay unattacked go out at once, untouched; the others to the newest-frame worker. A bad frame
        is counted and passed through untouched."""
        index, attacker = self.frames, self.attacker
        self.frames += 1
        self.last_input = time.monotonic()
        self.lost.add(stamp_ns(msg.header.stamp))
        started = time.perf_counter()
        try:
            check_frame(msg.encoding, msg.height, msg.width, msg.step, len(msg.data), self.params["max_image_pixels"])
        except FrameError as error:
            self._bad_frame(error)
            self._publish(msg, index, attacker, FrameResult(None, False, f"bad frame: {error}"), started)
            return
        if attacker.values["attack"] == "none" or not attacker.chosen(index):
            reason = "attack is none" if attacker.values["attack"] == "none" else "frame not drawn (fraction)"
            self._publish(msg, index, attacker, FrameResult(None, False, reason), started)
            return
        self.worker.offer((msg, index, attacker, started))

    def _bad_frame(self, error: FrameError) -> None:
        self.stats.frame_failed(str(error), bad_frame=True)
        self.get_logger().warning(f"bad frame passed through unattacked: {error}", throttle_duration_sec=5.0)

    def _process(self, item: tuple[Image, int, FrameAttacker, float]) -> None:
        msg, index, attacker, started = item
        try:
            result = attacker.attack_frame(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                           bool(msg.is_bigendian), index)
        except FrameError as error:
            self._bad_frame(error)
            result = FrameResult(None, False, f"bad frame: {error}")
        self._publish(msg, index, attacker, result, started)

    def _publish(self, msg: Image, index: int, attacker: FrameAttacker, result: FrameResult,
                 started: float) -> None:
        out = msg if result.pixels is None else image_message(result.pixels, msg.header, msg.encoding)
        self.image_pub.publish(out)
        stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        record = info_record(attacker.values, stamp, msg.header.frame_id, index, result, started)
        self.info_pub.publish(String(data=json.dumps(record, separators=(",", ":"))))
        self.stats.frame_done(record["processing_ms"], None, result.faces or 0)

    def _on_worker_error(self, error: BaseException) -> None:
        self.stats.frame_failed(f"{type(error).__name__}: {error}", bad_frame=False)
        self.get_logger().error(f"attack failed: {type(error).__name__}: {error}", throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        since = None if self.last_input is None else time.monotonic() - self.last_input
        figures = self.stats.snapshot(self.frames)
        extra = {"attack": self.params["attack"], "params": json.dumps(self.attacker.params),
                 "received_frames": self.frames, "dropped_frames": self.worker.dropped, "lost_frames": self.lost.lost,
                 "model_loaded": self.resources.model is not None}
        stale = max(5.0, 3 * self.params["diagnostics_period"])
        status = diagnostic_status(f"{self.get_fully_qualified_name()}: adversarial injector", "active",
                                   figures, extra, stale, since, self.stats.seconds_since_failure())
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def close(self) -> None:
        """On the way out: stop the worker."""
        self.worker.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(AdversarialInjectorNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
