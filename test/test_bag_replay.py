"""The live replay experiment over real DDS: image_source_node (bag) -> landmark_emotion_node -> scorer_node.

Its report must agree with the offline `bag evaluate` of the same bag on every frame the live node answered;
the frames it dropped are counted as such. The 30 fps bag is replayed 5x faster than recorded (150 frames/s),
usually faster than the node classifies, so some frames are normally dropped (not asserted: timing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bag_data import make_dataset
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import Probe, diagnostic_values, start_node
from std_msgs.msg import String

from emotion_perception.data.bags import write_dataset_bag
from emotion_perception.experiments.bag_evaluation import AttackSettings, FrameClassifier, evaluate_bag
from emotion_perception.models.landmark_model import EmotionModel


@pytest.fixture
def probe(ros_context, request):
    probe = Probe(ros_context, f"/replay_{request.node.name[:20]}")
    yield probe
    probe.destroy()


def stamp_key(frame: dict) -> int:
    return frame["stamp"]["sec"] * 10**9 + frame["stamp"]["nanosec"]


def test_live_replay_report_equals_offline_evaluation_except_dropped_frames(probe: Probe, tmp_path: Path):
    bag = tmp_path / "faces_bag"
    summary = write_dataset_bag(make_dataset(tmp_path / "faces"), bag, fps=30, storage="mcap")
    offline = evaluate_bag(bag, tmp_path / "offline_results", FrameClassifier(EmotionModel.load()),
                           AttackSettings(), "/image").results
    offline_frames = {stamp_key(f): f for f in offline["models"]["emotion/detail"]["frames"]}

    namespace = probe.node.get_namespace()
    diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
    scores = probe.collect(String, "scores")
    report = tmp_path / "live_report"
    scorer = start_node("emotion_perception.ros.nodes.scorer_node", tmp_path, namespace, {
        "detail_topics": ["emotion/detail"], "report_dir": str(report), "expected_frames": summary.labelled,
        "idle_timeout": 5.0, "exit_when_done": True, "source": str(bag)})
    classifier = start_node("emotion_perception.ros.nodes.landmark_emotion_node", tmp_path, namespace,
                            {"detect_every": 1, "detect_tiles": 1})
    source = None
    try:
        ready = probe.spin_until(lambda: diagnostic_values(diagnostics, f"{namespace}/scorer_node") is not None
                                 and diagnostic_values(diagnostics, f"{namespace}/landmark_emotion_node")
                                 is not None, 40)
        assert ready, scorer.log() + classifier.log()
        source = start_node("emotion_perception.ros.nodes.image_source_node", tmp_path, namespace, {
            "source_type": "bag", "source": str(bag), "rate_factor": 5.0, "wait_for_subscribers": 1})
        # the source stays up until the scorer is done: its ground truth is transient-local, so a scorer
        # whose subscription matched late still receives every record
        probe.spin_until(lambda: not scorer.alive(), 45)
        assert scorer.wait_exit(5) == 0, scorer.log()
    finally:
        for node in (source, classifier, scorer):
            if node is not None:
                node.stop()

    live = json.loads((report / "results.json").read_text())
    assert live["kind"] == "live replay" and "| `emotion/detail` |" in (report / "report.md").read_text()
    model = live["models"]["emotion/detail"]
    assert live["ground_truth_frames"] == summary.labelled == 8
    answered = [f for f in model["frames"] if f["answered"]]
    assert len(answered) >= 1
    assert model["dropped"] == live["dropped"] == 8 - len(answered)
    for frame in answered:  # every frame the live node answered: the offline answer, to the confidence
        expected = offline_frames[stamp_key(frame)]
        assert (frame["file"], frame["label"], frame["prediction"]) == \
            (expected["file"], expected["label"], expected["prediction"])
        assert frame["confidence"] == pytest.approx(expected["confidence"], abs=1e-4) \
            if expected["confidence"] is not None else frame["confidence"] is None
    offline_correct = sum(offline_frames[stamp_key(f)]["prediction"] == f["label"] for f in answered)
    assert live["accuracy"] == pytest.approx(offline_correct / len(answered))
    if model["dropped"] == 0:
        assert live["accuracy"] == pytest.approx(offline["accuracy"])
    final = json.loads(scores[-1].data)["models"]["emotion/detail"]
    assert (final["scored"], final["unanswered"]) == (len(answered), model["dropped"])
