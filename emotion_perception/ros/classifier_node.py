"""The classifier nodes' one shape: a managed (lifecycle) node that reads camera frames, follows the faces and
publishes the emotion of each face. The landmark and the ResNet nodes specialise it with their model.

Configure loads the models and creates the publishers, activate subscribes to `image`, deactivate unsubscribes,
cleanup releases models and publishers. With the parameter `autostart` (default true) a node configures and
activates itself, so it also runs without a lifecycle manager (`ros2 run`, `python -m`).

Outputs (topic prefix `topic`, remappable): `<topic>` (std_msgs/String, the primary face's label),
`<topic>/detail` (the JSON document of `core.detail`), `<topic>/debug_image` and `/diagnostics`; where hri_msgs is
installed, the REP-155 faces too (`ros/hri.py`), and with `face_source: ros4hri` the faces come from an upstream
ROS4HRI face detector. Only the newest frame is processed; stamps and frame ids are copied into everything
derived from a frame.
"""

from __future__ import annotations

import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from emotion_perception.core.annotate import draw_faces
from emotion_perception.core.detail import face_entries
from emotion_perception.core.errors import EmotionPerceptionError, ImageError
from emotion_perception.core.expressions import face_id
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.frames import check_frame
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import ParamSpec
from emotion_perception.core.pipeline import EmotionPipeline, FaceAnalyzer, classify_camera_frame
from emotion_perception.core.smoothing import ScoreSmoother
from emotion_perception.core.stream import FrameSizeWatch, LostFrames
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Classifier, FacePrediction
from emotion_perception.models.shipped import detail_name
from emotion_perception.models.tamper import Assessment, TamperCheck
from emotion_perception.ros import hri
from emotion_perception.ros.env import shm_segment_bytes
from emotion_perception.ros.plumbing import (
    NewestFrameWorker,
    ProcessingStats,
    declare_parameters,
    detail_json,
    diagnostic_status,
    image_message,
    image_qos,
    image_to_bgr,
    image_to_gray,
    parameter_guard,
    stamp_ns,
)


class ClassifierNode(LifecycleNode):
    """Frames in, the emotion of every face out. A subclass names itself and its parameters and topic, and
    supplies `load_model` (plus, optionally, `annotate` and `describe`)."""

    NAME = ""
    TITLE = ""  # the diagnostics status name after the node's name
    PARAMS: tuple[ParamSpec, ...] = ()
    TOPIC = "emotion"
    SHIPPED = ""  # the model file used when model_path is empty, for logs and diagnostics

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NAME, **kwargs)
        self.params = declare_parameters(self, self.PARAMS)
        self._configured = False
        self._active = False
        self._tracker: FaceTracker | None = None
        self._smoother = ScoreSmoother(self.params["smoothing_time"], self.params["label_hysteresis"])
        self.model: Classifier | None = None
        self._tamper: TamperCheck | None = None
        self._tampered_faces = 0
        self._model_file = ""
        self._worker: NewestFrameWorker | None = None
        self._stats = ProcessingStats()
        self._received = 0
        self._lost = LostFrames()
        self._size_watch = FrameSizeWatch(shm_segment_bytes())
        self._last_input: float | None = None
        self._last_shape: tuple[int, int] | None = None
        self._subscription = None
        self._timer = None
        self._pubs: dict[str, Any] = {}
        self._hri: hri.FacesOut | None = None
        self._crops: EmotionPipeline | None = None  # face_source ros4hri: the upstream face images' step
        self.add_on_set_parameters_callback(parameter_guard(self.PARAMS, lambda: self._configured))
        self.add_post_set_parameters_callback(self._apply_parameters)

    # --- what a subclass supplies -------------------------------------------------------------------

    def load_model(self) -> Classifier:
        """The classifier the parameters name (EmotionPerceptionError when it cannot be loaded)."""
        raise NotImplementedError

    def annotate(self, entries: list[dict[str, Any]], predictions: list[FacePrediction]) -> None:
        """Add model-specific fields to the faces of emotion/detail (nothing by default)."""

    def describe(self) -> dict[str, Any]:
        """Model-specific diagnostics values."""
        return {}

    # --- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.params
        try:
            detector = FaceDetector(p["upsample"], min_size=1, whole_image_fallback=False)
            self._tracker = FaceTracker(detector, LandmarkPredictor(p["landmark_model_path"] or None))
            self.model = self.load_model()
            self._tamper = TamperCheck.load(p["visibility_model_path"] or None)
        except EmotionPerceptionError as error:
            self.get_logger().error(f"configure failed: {error}")
            self._tracker = self.model = self._tamper = None
            return TransitionCallbackReturn.FAILURE
        self._tracker.apply_params(self.params)
        self._model_file = p["model_path"] or f"{self.SHIPPED} (shipped)"
        self._pubs = {
            "emotion": self.create_lifecycle_publisher(String, self.TOPIC, 10),
            "detail": self.create_lifecycle_publisher(String, f"{self.TOPIC}/detail", 10),
            "debug": self.create_lifecycle_publisher(Image, f"{self.TOPIC}/debug_image", 1),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        self._stats, self._received, self._lost = ProcessingStats(), 0, LostFrames()
        if not self._configure_hri():
            self._release_all()
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        self.get_logger().info(
            f"configured: model {detail_name(self.model)} ({self._model_file}), landmarks "
            f"{self._tracker.predictor.path.name}, detect every {p['detect_every']} frames, {self.describe()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = image_qos(self.params["reliability"])
        if self._crops is not None:  # face_source ros4hri
            self._worker = hri.FacesIn(self, self.params["hri_face_image"], qos, self._process_face,
                                       self._on_worker_error, self._hri.keep)
            listening = self._worker.topic
        else:
            self._worker = NewestFrameWorker(self._process, self._on_worker_error)
            self._subscription = self.create_subscription(Image, "image", self._on_image, qos)
            listening = self._subscription.topic_name
        self._timer = self.create_timer(self.params["diagnostics_period"], self._publish_diagnostics)
        self._active = True
        result = super().on_activate(state)  # enables the lifecycle publishers
        self.get_logger().info(f"active: listening on {listening}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.release_activity()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def release_activity(self) -> None:
        """Unsubscribe, stop the diagnostics timer and the worker (deactivate, shutdown)."""
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _release_all(self) -> None:
        self.release_activity()
        for publisher in self._pubs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._pubs = {}
        if self._hri is not None:
            self._hri.close()
        self._hri = self._crops = None
        self._tracker = self.model = self._tamper = None
        self._configured = False

    def begin(self) -> bool:
        """With `autostart`: configure and activate; False (and one log line) when a transition failed."""
        if not self.params["autostart"]:
            return True
        if (self.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and self.trigger_activate() == TransitionCallbackReturn.SUCCESS):
            return True
        self.get_logger().error("autostart failed: the node could not be configured and activated")
        return False

    def close(self) -> None:
        """On the way out: stop the worker and the subscription."""
        self.release_activity()

    # --- parameters --------------------------------------------------------------------------------

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        for parameter in parameters:
            if parameter.name in self.params:
                self.params[parameter.name] = parameter.value
                self.get_logger().info(f"parameter {parameter.name} = {parameter.value!r}")
        if self._tracker is not None:
            self._tracker.apply_params(self.params)
        if self._smoother.time_constant != self.params["smoothing_time"]:
            self._smoother = ScoreSmoother(self.params["smoothing_time"], self.params["label_hysteresis"])

    # --- frames ------------------------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        """Every frame that arrives is counted and checked here: a bad one never takes a good one's place."""
        self._last_input = time.monotonic()
        self._received += 1
        self._lost.add(stamp_ns(msg.header.stamp))
        warning = self._size_watch.check(len(msg.data), f"a received {msg.width}x{msg.height} {msg.encoding} frame")
        if warning:
            self.get_logger().warning(warning)
        try:
            check_frame(msg.encoding, msg.height, msg.width, msg.step, len(msg.data), self.params["max_image_pixels"])
        except ImageError as error:
            self._bad_frame(msg, error)
            return
        if self._worker is not None:
            self._worker.offer(msg)

    def _bad_frame(self, msg: Image, error: ImageError) -> None:
        self._stats.frame_failed(f"{msg.width}x{msg.height} {msg.encoding!r}: {error}", bad_frame=True)
        self.get_logger().warning(f"bad frame skipped: {error}", throttle_duration_sec=5.0)

    def _process(self, msg: Image) -> None:
        start = time.perf_counter()
        tracker, model, p = self._tracker, self.model, self.params
        if tracker is None or model is None or not self._active:
            return
        try:
            gray = image_to_gray(msg, p["max_image_pixels"])
        except ImageError as error:
            self._bad_frame(msg, error)
            return
        if gray.shape != self._last_shape:
            tracker.reset()
            self._smoother.reset()
            self._last_shape = gray.shape
        tamper = self._tamper if p["check_tampering"] else None
        ids, predictions, checks = classify_camera_frame(tracker, model, gray, p["max_processing_width"], tamper)
        if checks is not None:
            self._tampered_faces += sum(check.flagged for check in checks)
        height, width = gray.shape
        self._publish(msg, width, height, ids, predictions, start, checks)

    def _publish(self, msg: Image, width: int, height: int, ids: list[int], predictions: list[FacePrediction],
                 start: float, checks: list[Assessment] | None) -> None:
        p = self.params
        now = self.get_clock().now().nanoseconds
        stamp = stamp_ns(msg.header.stamp)
        latency = (now - stamp) / 1e6 if now > 0 and stamp > 0 else None
        smoothing = p["smoothing_time"] > 0 or p["label_hysteresis"] > 0
        frame_labels = [face.label for face in predictions] if smoothing else None
        predictions = self._smoother.update(stamp / 1e9 if stamp > 0 else time.monotonic(), ids, predictions)
        entries = face_entries(ids, predictions, p["min_confidence"], p["publish_landmarks"], frame_labels,
                               None if checks is None else [check.to_json() for check in checks])
        self.annotate(entries, predictions)
        processing = (time.perf_counter() - start) * 1000
        worker = self._worker
        frames = {"lost_frames": self._lost.lost, "dropped_frames": worker.dropped if worker else 0}
        detail = detail_json(msg.header, detail_name(self.model), (width, height), entries, latency, processing,
                             frames)
        pubs = self._pubs
        if predictions and not entries[0]["uncertain"]:
            pubs["emotion"].publish(String(data=predictions[0].label))
        pubs["detail"].publish(String(data=detail))
        if self._hri is not None:
            self._hri.publish(msg.header, [face_id(i) for i in ids], predictions, (width, height))
        if p["publish_debug_image"]:
            bgr = image_to_bgr(msg, p["max_image_pixels"])
            pubs["debug"].publish(image_message(draw_faces(bgr, zip(ids, predictions)), msg.header))
        self._stats.frame_done(processing, latency, len(predictions), sum(e["uncertain"] for e in entries))

    # --- REP-155 (ros/hri.py) -----------------------------------------------------------------------

    def _configure_hri(self) -> bool:
        """The REP-155 output and, with face_source ros4hri, the upstream faces' step; one log line says which.
        False when face_source ros4hri cannot work (no hri_msgs)."""
        p, log = self.params, self.get_logger()
        upstream = p["face_source"] == "ros4hri"
        if not hri.available():
            if upstream:
                log.error("configure failed: face_source ros4hri needs hri_msgs, which is not installed")
                return False
            log.info("REP-155 topics off: hri_msgs is not installed" if p["publish_hri"] else
                     "REP-155 topics off (publish_hri false)")
            return True
        if upstream:
            # upstream face images are crops: upscaled for the detector, the whole image when it finds no face
            detector = FaceDetector(p["upsample"], small_side=256, whole_image_fallback=True)
            self._crops = EmotionPipeline(FaceAnalyzer(detector, self._tracker.predictor), self.model)
            self._hri = hri.FacesOut(self, tracked=False)
            log.info(f"faces from ROS4HRI: {hri.FACES}/tracked and {hri.FACES}/<id>/{p['hri_face_image']}; "
                     f"publishing {hri.FACES}/<id>/expression")
        elif p["publish_hri"]:
            self._hri = hri.FacesOut(self)
            log.info(f"REP-155: publishing {hri.FACES}/tracked, {hri.FACES}/<id>/roi and {hri.FACES}/<id>/expression")
        else:
            log.info("REP-155 topics off (publish_hri false)")
        return True

    def _process_face(self, face: str, msg: Image) -> None:
        """face_source ros4hri: the expression of one upstream face image, published with its header."""
        start = time.perf_counter()
        crops, out, p = self._crops, self._hri, self.params
        if crops is None or out is None or not self._active:
            return
        try:
            gray = image_to_gray(msg, p["max_image_pixels"])
        except ImageError as error:
            self._stats.frame_failed(f"face {face} {msg.width}x{msg.height} {msg.encoding!r}: {error}", bad_frame=True)
            self.get_logger().warning(f"bad face image skipped: {error}", throttle_duration_sec=5.0)
            return
        stamp = stamp_ns(msg.header.stamp)
        predictions = self._smoother.update(stamp / 1e9 if stamp > 0 else time.monotonic(), [face],
                                            crops.run(gray)[:1])
        out.publish(msg.header, [face], predictions)
        now = self.get_clock().now().nanoseconds
        latency = (now - stamp) / 1e6 if now > 0 and stamp > 0 else None
        self._stats.frame_done((time.perf_counter() - start) * 1000, latency, len(predictions))

    def _on_worker_error(self, error: BaseException) -> None:
        self._stats.frame_failed(f"{type(error).__name__}: {error}", bad_frame=False)
        self.get_logger().error(f"frame processing failed: {type(error).__name__}: {error}",
                                throttle_duration_sec=5.0)

    # --- diagnostics -------------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        worker = self._worker
        # frames are counted as they arrive; with face_source ros4hri, the face images FacesIn received
        received = self._received if self._crops is None else (worker.received if worker else 0)
        figures = self._stats.snapshot(received)
        figures["dropped_frames"] = worker.dropped if worker else 0
        figures["lost_frames"] = self._lost.lost
        since = None if self._last_input is None else time.monotonic() - self._last_input
        extra = {"model_file": self._model_file, **self.describe(), "detect_every": self.params["detect_every"],
                 "received_frames": received, "tampered_faces": self._tampered_faces}
        stale = max(5.0, 3 * self.params["diagnostics_period"])
        state = "active" if self._active else "inactive"
        status = diagnostic_status(f"{self.get_fully_qualified_name()}: {self.TITLE}", state, figures, extra, stale,
                                   since, self._stats.seconds_since_failure())
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        if "diagnostics" in self._pubs:
            self._pubs["diagnostics"].publish(array)
