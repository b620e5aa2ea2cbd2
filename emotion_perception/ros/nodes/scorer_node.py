"""scorer_node: scores the classifier nodes live against the ground truth of a replayed dataset.

Subscribes `ground_truth/emotion` (JSON records with the stamp of their frame, from image_source_node)
and each topic of `detail_topics` (emotion/detail documents), matches them by stamp and publishes the
running accuracy of every model as JSON on `scores` and on /diagnostics. When scoring ends (all
`expected_frames` answered by every model, `idle_timeout` seconds without messages, or shutdown) it
writes report.md and results.json to `report_dir`, counting the frames a model never answered as
dropped, and exits if `exit_when_done`. ROS plumbing only: the scoring is in `emotion_perception.experiments.scoring`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from emotion_perception.core.errors import ParameterError
from emotion_perception.experiments.scoring import Scoreboard, write_report
from emotion_perception.ros.params import SCORER_NODE_PARAMS
from emotion_perception.ros.plumbing import declare_parameters, run_node

NODE_NAME = "scorer_node"


class ScorerNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = declare_parameters(self, SCORER_NODE_PARAMS)
        topics = [str(t).strip() for t in self.params["detail_topics"] if str(t).strip()]
        if not topics or len(set(topics)) != len(topics):
            raise ParameterError(f"detail_topics must name one or more different topics, got {topics}")
        self.board = Scoreboard(topics)
        self.malformed = 0
        self.last_message: float | None = None
        self.done = False
        self.reports = 0
        self.announced_wait = False
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        durability = DurabilityPolicy.TRANSIENT_LOCAL if self.params["ground_truth_durability"] == "transient_local" \
            else DurabilityPolicy.VOLATILE  # transient local: also the records published before this matched
        truth_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=durability)
        self.detail_subscriptions = [
            self.create_subscription(String, topic, lambda msg, t=topic: self._on_detail(t, msg), reliable)
            for topic in topics]
        self.scores_pub = self.create_publisher(String, "scores", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.params["diagnostics_period"], self._tick)
        self.get_logger().info(f"scoring {', '.join(topics)} against {self.params['ground_truth_topic']}")
        self.truth_timer = self.create_timer(0.05, lambda: self._subscribe_truth(truth_qos))

    def _subscribe_truth(self, qos: QoSProfile) -> None:
        """Subscribe the ground truth, with wait_for_classifiers once every detail topic has a publisher."""
        missing = [s.topic_name for s in self.detail_subscriptions if self.count_publishers(s.topic_name) == 0]
        if missing and self.params["wait_for_classifiers"]:
            if not self.announced_wait:
                self.get_logger().info(f"waiting for publishers on {', '.join(missing)}")
                self.announced_wait = True
            return
        self.destroy_timer(self.truth_timer)
        self.create_subscription(String, self.params["ground_truth_topic"], self._on_truth, qos)

    # --- inputs ------------------------------------------------------------------------------------

    def _on_truth(self, msg: String) -> None:
        try:
            self.board.add_truth(json.loads(msg.data))
        except (ValueError, TypeError, AttributeError) as error:
            self._malformed(f"ground truth: {error}")
            return
        self._activity()

    def _on_detail(self, topic: str, msg: String) -> None:
        try:
            self.board.add_detail(topic, json.loads(msg.data))
        except (ValueError, TypeError, AttributeError) as error:
            self._malformed(f"{topic}: {error}")
            return
        self._activity()
        self._publish_scores()

    def _malformed(self, reason: str) -> None:
        self.malformed += 1
        self.get_logger().warning(f"ignored a malformed message: {reason}", throttle_duration_sec=5.0)

    def _activity(self) -> None:
        self.last_message = time.monotonic()
        self.done = False  # new data after a report: the next end of activity writes it again

    # --- outputs -----------------------------------------------------------------------------------

    def running(self) -> dict[str, Any]:
        return {**self.board.running(), "malformed_messages": self.malformed, "done": self.done}

    def _publish_scores(self) -> None:
        self.scores_pub.publish(String(data=json.dumps(self.running(), separators=(",", ":"))))

    def _tick(self) -> None:
        if not self.done and self._finished():
            self.finish()
        self._publish_diagnostics()

    def _finished(self) -> bool:
        if self.last_message is None or not self.board.truth:
            return False
        expected = int(self.params["expected_frames"])
        if expected and len(self.board.truth) >= expected and self.board.complete():
            return True
        idle = float(self.params["idle_timeout"])
        return idle > 0 and time.monotonic() - self.last_message >= idle

    def finish(self, publish: bool = True) -> None:
        """Write the report (if report_dir is set) and publish the final scores (unless shutting down)."""
        self.done = True
        if publish:
            self._publish_scores()
        results = self.board.results("live replay", str(self.params["source"]) or "live topics", {
            "settings": {"detail topics": ", ".join(self.board.models),
                         "malformed messages ignored": self.malformed}})
        summary = "; ".join(f"{topic}: accuracy {r['accuracy']} over {r['answered']} answered, {r['dropped']} "
                            "dropped" for topic, r in results["models"].items())
        if self.params["report_dir"]:
            try:
                write_report(self.params["report_dir"], results)
            except OSError as error:
                self.get_logger().error(f"cannot write the report to {self.params['report_dir']}: {error}")
                return
            self.reports += 1
            self.get_logger().info(f"report written to {self.params['report_dir']}: {summary}")
        else:
            self.get_logger().info(f"scores: {summary}")

    def _publish_diagnostics(self) -> None:
        running = self.running()
        values = [KeyValue(key="ground_truth_frames", value=str(running["ground_truth_frames"])),
                  KeyValue(key="malformed_messages", value=str(self.malformed)),
                  KeyValue(key="reports_written", value=str(self.reports))]
        for topic, figures in running["models"].items():
            values += [KeyValue(key=f"{topic}: {key}", value=str(value)) for key, value in figures.items()]
        level, message = DiagnosticStatus.OK, "done" if self.done else "scoring"
        if not self.board.truth:
            level, message = DiagnosticStatus.WARN, "no ground truth received"
        array = DiagnosticArray(status=[DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: scorer", message=message, hardware_id="",
            values=values)])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def should_exit(self) -> bool:
        return self.done and bool(self.params["exit_when_done"])

    def close(self) -> None:
        """On the way out: the report of what was scored so far, or the final scores delivered to their readers."""
        if not self.done and self.board.truth:
            self.finish(publish=False)
        elif rclpy.ok():
            self.scores_pub.wait_for_all_acked(Duration(seconds=2.0))


def main(args: list[str] | None = None) -> int:
    return run_node(ScorerNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
