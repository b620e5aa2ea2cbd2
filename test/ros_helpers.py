"""Helpers for node tests over real rclpy + Fast DDS: nodes as subprocesses with --ros-args, and a probe
node that publishes frames, collects outputs with a deadline and calls services.

The ROS environment (localhost discovery, private domain id) is set by conftest.py before rclpy starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from emotion_perception.core.frames import encode_frame

REPO = Path(__file__).resolve().parents[1]


def ros_args(params: dict[str, Any]) -> list[str]:
    """`-p name:=value` arguments (booleans as true/false, strings quoted for the YAML parser)."""
    args = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            text = repr(value)
        args += ["-p", f"{name}:={text}"]
    return args


class NodeProcess:
    """A node module run as `python -m MODULE --ros-args ...`, its output in a log file; always stopped."""

    def __init__(self, module: str, args: Iterable[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"node still running after {timeout} s; log:\n{self.log()}") from None

    def stop(self) -> None:
        """SIGINT (clean shutdown), then SIGKILL of this process id if it does not end in 5 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def start_node(module: str, tmp_path: Path, namespace: str, params: dict[str, Any] | None = None,
               extra: Iterable[str] = ()) -> NodeProcess:
    """Start a node of this package in its own namespace (topics relative to it)."""
    name = module.rsplit(".", 1)[-1]
    args = ["-r", f"__ns:={namespace}", *ros_args(params or {}), *extra]
    return NodeProcess(module, args, tmp_path / f"{name}{namespace.replace('/', '_')}.log")


def image_msg(image: np.ndarray, sec: int, nanosec: int = 0, frame_id: str = "camera") -> Image:
    """A mono8/bgr8 sensor_msgs/Image of a uint8 array with the given stamp and frame id."""
    encoding, height, width, step, data = encode_frame(image)
    return raw_image(encoding, height, width, step, data, sec, nanosec, frame_id)


def raw_image(encoding: str, height: int, width: int, step: int, data: bytes, sec: int, nanosec: int = 0,
              frame_id: str = "camera") -> Image:
    """An Image with exactly these fields, consistent or not (for bad-frame tests)."""
    msg = Image(encoding=encoding, height=height, width=width, step=step, is_bigendian=0)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    msg.data = data
    return msg


class Probe:
    """A test node: publishers, collecting subscriptions and service clients, spun with deadlines."""

    def __init__(self, context: Context, namespace: str, name: str = "probe") -> None:
        self.node = rclpy.create_node(name, namespace=namespace, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.inbox: dict[str, list[Any]] = {}

    def publisher(self, msg_type: type, topic: str, reliable: bool = True, depth: int = 10) -> Any:
        policy = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=depth, reliability=policy))

    def collect(self, msg_type: type, topic: str, depth: int = 100) -> list[Any]:
        """Every message that arrives on `topic` (reliable subscription), in arrival order."""
        box: list[Any] = self.inbox.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, box.append, depth)
        return box

    def spin_until(self, done: Callable[[], bool], timeout: float, every: Callable[[], None] | None = None) -> bool:
        """Spin until `done()` or the deadline; `every` runs between spins (e.g. to republish)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            if every is not None:
                every()
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_for_subscribers(self, publisher: Any, timeout: float = 20.0) -> None:
        if not self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout):
            raise AssertionError(f"nobody subscribed to {publisher.topic_name} within {timeout} s")

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0,
             resend_every: float | None = None) -> Any:
        """The service's response. An idempotent request may pass `resend_every`: Fast DDS drops a response when
        the server has not yet matched a brand-new client's reader (on a busy machine that takes seconds), so the
        request is sent again at that interval until one answer arrives."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                raise AssertionError(f"service {name} not available within {timeout} s")
            futures = [client.call_async(request)]
            sent = [time.monotonic()]

            def resend() -> None:
                if resend_every is not None and time.monotonic() - sent[0] > resend_every:
                    futures.append(client.call_async(request))
                    sent[0] = time.monotonic()

            if not self.spin_until(lambda: any(f.done() for f in futures), timeout, resend):
                raise AssertionError(f"service {name} did not answer within {timeout} s")
            return next(f for f in futures if f.done()).result()
        finally:
            self.node.destroy_client(client)

    def destroy(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def details(messages: list[Any]) -> list[dict[str, Any]]:
    """The emotion/detail JSON documents received so far."""
    return [json.loads(m.data) for m in messages]


def detail_for(messages: list[Any], sec: int, nanosec: int = 0) -> dict[str, Any] | None:
    """The detail document of the frame with this stamp, if it arrived."""
    for doc in details(messages):
        if doc["stamp"] == {"sec": sec, "nanosec": nanosec}:
            return doc
    return None


def diagnostic_values(messages: list[DiagnosticArray], name_part: str) -> dict[str, str] | None:
    """Key/values of the newest status whose name contains `name_part` (None before the first)."""
    for array in reversed(messages):
        for status in array.status:
            if name_part in status.name:
                return {kv.key: kv.value for kv in status.values}
    return None


def set_parameters(probe: Probe, node: str, **values: Any) -> list[Any]:
    """`ros2 param set` for a node (its name relative to the probe's namespace): the SetParameters results."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    request = SetParameters.Request()
    for name, value in values.items():
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        request.parameters.append(Parameter(name=name, value=pv))
    return probe.call(SetParameters, f"{node}/set_parameters", request, timeout=20.0, resend_every=3.0).results


class ClassifierSession:
    """A running classifier node (`module`, whose outputs start with `topic`) in its own namespace, plus a probe
    that publishes frames to it and collects its outputs."""

    def __init__(self, context, tmp_path, namespace: str, params: dict, module: str, node: str,
                 topic: str = "emotion") -> None:
        self.node = node
        self.namespace = namespace
        self.process = start_node(module, tmp_path, namespace, params)
        self.probe = Probe(context, namespace)
        self.images = self.probe.publisher(Image, "image", reliable=True, depth=1)
        self.emotions = self.probe.collect(String, topic)
        self.details = self.probe.collect(String, f"{topic}/detail")
        self.debug = self.probe.collect(Image, f"{topic}/debug_image")
        self.diagnostics = self.probe.collect(DiagnosticArray, "/diagnostics")
        self._stamp = 1000

    def next_stamp(self) -> int:
        self._stamp += 1
        return self._stamp

    def send(self, msg: Image) -> None:
        self.images.publish(msg)

    def send_until(self, msg: Image, done, timeout: float = 20.0, period: float = 0.5) -> bool:
        """Publish `msg` (again every `period` s, as a best-effort camera would) until `done()`."""
        last = [float("-inf")]

        def republish() -> None:
            if time.monotonic() - last[0] > period:
                self.send(msg)
                last[0] = time.monotonic()

        return self.probe.spin_until(done, timeout, republish)

    def answer(self, image: np.ndarray, timeout: float = 30.0, frame_id: str = "camera") -> dict:
        """The emotion/detail document of one frame of `image` (stamp unique to this call)."""
        sec = self.next_stamp()
        found = self.send_until(image_msg(image, sec, 250, frame_id),
                                lambda: detail_for(self.details, sec, 250) is not None, timeout)
        assert found, f"no emotion/detail for frame {sec} within {timeout} s; node log:\n{self.process.log()}"
        return detail_for(self.details, sec, 250)

    def diag(self) -> dict[str, str] | None:
        return diagnostic_values(self.diagnostics, f"{self.namespace}/{self.node}")

    def wait_diag(self, done, timeout: float = 20.0) -> dict[str, str]:
        ok = self.probe.spin_until(lambda: (d := self.diag()) is not None and done(d), timeout)
        assert ok, f"diagnostics never satisfied the condition; last: {self.diag()}\nlog:\n{self.process.log()}"
        return self.diag()

    def set_parameters(self, **values) -> list:
        return set_parameters(self.probe, self.node, **values)

    def close(self) -> None:
        self.probe.destroy()
        self.process.stop()
