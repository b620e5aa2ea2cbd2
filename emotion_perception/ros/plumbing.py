"""ROS plumbing shared by the classifier nodes: parameters from specs, image messages, the newest-frame
worker, processing statistics, the emotion/detail JSON and /diagnostics statuses."""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from emotion_perception.core.detail import DETAIL_VERSION, detail_json  # noqa: F401  (re-exported for the nodes)
from emotion_perception.core.errors import EmotionPerceptionError, ParameterError, SourceError
from emotion_perception.core.frames import encode_frame, frame_to_bgr, frame_to_gray
from emotion_perception.core.params import ParamSpec, validate
from emotion_perception.core.stream import health

# --- parameters --------------------------------------------------------------------------------------


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """A ROS parameter descriptor with the spec's description, choices and numeric range."""
    text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else "")
    text += "" if spec.tunable else " [applied on configure]"
    desc = ParameterDescriptor(name=spec.name, description=text)
    if spec.kind is int and spec.low is not None and spec.high is not None:
        desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)]
    elif spec.kind is float and spec.low is not None and spec.high is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high),
                                                        step=0.0)]
    return desc


def declare_parameters(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec'd parameter (start-up overrides applied) and validate the values.

    Raises ParameterError naming each bad value, so that the node can refuse to start with a clear reason.
    """
    values, problems = {}, []
    for spec in specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except ParameterException as error:
            problems.append(f"{spec.name}: {error}")
    problems += validate(specs, values)
    if problems:
        raise ParameterError("; ".join(problems))
    return values


def parameter_guard(
    specs: Sequence[ParamSpec], configured: Callable[[], bool]
) -> Callable[[list[Parameter]], SetParametersResult]:
    """An on-set-parameters callback: rejects bad values, and changes of non-tunable parameters while
    `configured()` (they take effect on configure), each with its reason."""
    known = {spec.name: spec for spec in specs}

    def check(parameters: list[Parameter]) -> SetParametersResult:
        problems = []
        for parameter in parameters:
            spec = known.get(parameter.name)
            if spec is None:
                continue  # parameters of rclpy itself, e.g. use_sim_time
            reason = spec.check(parameter.value)
            if reason is None and not spec.tunable and configured():
                reason = (f"{spec.name} takes effect on configure: deactivate and clean up the node "
                          "before changing it")
            if reason:
                problems.append(reason)
        return SetParametersResult(successful=not problems, reason="; ".join(problems))

    return check


def image_qos(reliability: str) -> QoSProfile:
    """Camera subscription QoS: keep only the newest frame; best effort (sensor data) or reliable."""
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)


# --- images -------------------------------------------------------------------------------------------


def image_to_gray(msg: Image, max_pixels: int) -> np.ndarray:
    """uint8 grey pixels of a sensor_msgs/Image; FrameError says what is wrong with a bad frame."""
    return frame_to_gray(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian),
                         max_pixels)


def image_to_bgr(msg: Image, max_pixels: int) -> np.ndarray:
    return frame_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian),
                        max_pixels)


def image_message(image: np.ndarray, header: Any, encoding: str | None = None) -> Image:
    """A sensor_msgs/Image of a uint8 array with the given header: mono8/bgr8, or `encoding` (see
    `frames.encode_frame`)."""
    encoding, height, width, step, data = encode_frame(image, encoding)
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = data
    return msg


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --- newest-frame worker and statistics ------------------------------------------------------------------


class NewestFrameWorker:
    """A thread that processes only the newest offered item; items replaced before it got to them are dropped.

    A slow classifier thus drops frames instead of building a backlog. Exceptions of `handle` go to
    `on_error`; the worker keeps running.
    """

    def __init__(self, handle: Callable[[Any], None], on_error: Callable[[BaseException], None]) -> None:
        self._handle = handle
        self._on_error = on_error
        self._wake = threading.Condition()
        self._item: Any = None
        self._stopping = False
        self.received = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="newest-frame-worker", daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> None:
        with self._wake:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the frame in hand, drop any waiting one, and end the thread."""
        with self._wake:
            self._stopping = True
            self._item = None
            self._wake.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._item is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                item, self._item = self._item, None
            try:
                self._handle(item)
            except Exception as error:  # the node must survive anything one frame does
                self._on_error(error)


class ProcessingStats:
    """Counters and recent latencies of a node, read by its diagnostics (thread-safe)."""

    def __init__(self, window: int = 500) -> None:
        self._lock = threading.Lock()
        self._latency: deque[float] = deque(maxlen=window)
        self._processing: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.bad_frames = 0
        self.errors = 0
        self.last_error = ""
        self.faces = 0
        self.uncertain_faces = 0
        self._failed_at: float | None = None
        self._mark = (time.monotonic(), 0, 0)

    def frame_done(self, processing_ms: float, latency_ms: float | None, faces: int, uncertain: int = 0) -> None:
        with self._lock:
            self.processed += 1
            self.faces = faces
            self.uncertain_faces += uncertain
            self._processing.append(processing_ms)
            if latency_ms is not None:
                self._latency.append(latency_ms)

    def frame_failed(self, reason: str, bad_frame: bool) -> None:
        with self._lock:
            if bad_frame:
                self.bad_frames += 1
            else:
                self.errors += 1
            self.last_error = reason
            self._failed_at = time.monotonic()

    def seconds_since_failure(self) -> float | None:
        """Seconds since the last bad frame or error (None when there was none)."""
        failed_at = self._failed_at
        return None if failed_at is None else time.monotonic() - failed_at

    def snapshot(self, received: int) -> dict[str, float | int | str]:
        """Figures since start, plus input/processing rates since the previous snapshot."""
        with self._lock:
            now = time.monotonic()
            then, received_then, processed_then = self._mark
            span = max(now - then, 1e-6)
            self._mark = (now, received, self.processed)
            latency = np.array(self._latency) if self._latency else None
            processing = np.array(self._processing) if self._processing else None
            return {
                "input_rate_hz": round((received - received_then) / span, 2),
                "processing_rate_hz": round((self.processed - processed_then) / span, 2),
                "latency_p50_ms": _percentile(latency, 50), "latency_p99_ms": _percentile(latency, 99),
                "processing_p50_ms": _percentile(processing, 50),
                "processing_p99_ms": _percentile(processing, 99),
                "processed_frames": self.processed, "faces": self.faces, "bad_frames": self.bad_frames,
                "errors": self.errors, "last_error": self.last_error, "uncertain_faces": self.uncertain_faces,
            }


def _percentile(values: np.ndarray | None, q: float) -> float:
    return float("nan") if values is None else round(float(np.percentile(values, q)), 2)


# --- outputs ---------------------------------------------------------------------------------------------


def diagnostic_status(
    name: str, state: str, figures: dict[str, Any], extra: dict[str, Any], stale_after_s: float,
    seconds_since_input: float | None, seconds_since_failure: float | None = None,
) -> DiagnosticStatus:
    """OK while frames are processed; WARN when inactive, without input, or for a while after a bad frame or an
    error (`stream.health`); the counts stay in the values."""
    failures = int(figures.get("bad_frames", 0)) + int(figures.get("errors", 0))
    ok, message = health(state, seconds_since_input, stale_after_s, seconds_since_failure, failures,
                         str(figures.get("last_error", "")))
    level = DiagnosticStatus.OK if ok else DiagnosticStatus.WARN
    values = [KeyValue(key=k, value=str(v)) for k, v in {**figures, **extra, "state": state}.items()]
    return DiagnosticStatus(level=level, name=name, message=message[:200], hardware_id="", values=values)


STARTUP_FAILURES = {ParameterError: "bad parameters", SourceError: "cannot open the source"}


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler: KeyboardInterrupt, then ignore further SIGINTs. Under `ros2 launch` Ctrl-C comes twice (from
    the terminal and from launch): the second must not break the clean-up into a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_node(make_node: Callable[[], Any], name: str, args: list[str] | None = None) -> int:
    """The main() of every node. A node may define `begin() -> bool` (after construction, e.g. the classifiers'
    autostart), `should_exit() -> bool` (checked between callbacks), `close()` (on the way out, also after
    Ctrl-C) and `exit_code`.

    Exit status: 2 when the node refuses its parameters or its source (one log line), 1 when `begin` fails, else
    the node's `exit_code` (0 unless it says otherwise)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    # Ctrl-C raises KeyboardInterrupt in this thread, once (rclpy's own handler would shut the context down at once,
    # under the feet of a worker thread still publishing a frame)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt_once)
    node = None
    try:
        try:
            node = make_node()
        except EmotionPerceptionError as error:
            rclpy.logging.get_logger(name).error(f"{STARTUP_FAILURES.get(type(error), 'cannot start')}: {error}")
            return 2
        if hasattr(node, "begin") and not node.begin():
            return 1
        # the objects made so far (models, torch, dlib) are kept to the end: the collector, also the final one at
        # exit, stops walking them (a ResNet node then exits in ~0.6 s, not ~1.6 s: launch kills a node after 5 s)
        gc.freeze()
        while rclpy.ok() and not (hasattr(node, "should_exit") and node.should_exit()):
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return int(getattr(node, "exit_code", 0))
