"""The live replay experiment over real DDS: image_source_node (bag) -> landmark_emotion_node -> scorer_node.

Its report must agree with the offline `bag evaluate` of the same bag on every frame the live node answered;
the frames it dropped are counted as such. Here none may be dropped: the 30 fps bag is replayed 20x slower than
recorded (a frame every 667 ms, while the node takes ~5-170 ms per frame on a loaded 2-core machine, and drops a
frame only when one frame takes longer than two frame intervals), the classifier subscribes reliably, the scorer
listens before the source starts, and the source holds its first frame until the classifier listens.
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


RATE_FACTOR = 0.05  # 30 fps recorded -> 1.5 frames/s live (at 5.0, 150 frames/s, 2 of the 8 were answered)


def stamp_key(frame: dict) -> int:
    return frame["stamp"]["sec"] * 10**9 + frame["stamp"]["nanosec"]


def test_live_replay_answers_every_frame_as_the_offline_evaluation_does(probe: Probe, tmp_path: Path):
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
    details = probe.collect(String, "emotion/detail")
    classifier = start_node("emotion_perception.ros.nodes.landmark_emotion_node", tmp_path, namespace,
                            {"detect_every": 1, "detect_tiles": 1, "reliability": "reliable",
                             "diagnostics_period": 0.2})
    source = None
    try:
        ready = probe.spin_until(lambda: diagnostic_values(diagnostics, f"{namespace}/scorer_node") is not None
                                 and diagnostic_values(diagnostics, f"{namespace}/landmark_emotion_node")
                                 is not None, 40)
        assert ready, scorer.log() + classifier.log()
        # the scorer listens to the classifier's details before the first frame goes out
        detail_readers = probe.spin_until(lambda: any(
            info.node_name == "scorer_node"
            for info in probe.node.get_subscriptions_info_by_topic(f"{namespace}/emotion/detail")), 20)
        assert detail_readers, scorer.log()
        source = start_node("emotion_perception.ros.nodes.image_source_node", tmp_path, namespace, {
            "source_type": "bag", "source": str(bag), "rate_factor": RATE_FACTOR, "wait_for_subscribers": 1})
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
    processing_ms = [json.loads(m.data)["processing_ms"] for m in details]
    assert len(answered) == 8, (
        f"{len(answered)} of 8 frames answered; processing ms {processing_ms}; classifier diagnostics "
        f"{diagnostic_values(diagnostics, f'{namespace}/landmark_emotion_node')}")
    assert len(details) == len({stamp_key(json.loads(m.data)) for m in details})  # one answer per frame
    assert model["dropped"] == live["dropped"] == 0
    for frame in answered:  # every frame: the offline answer, to the confidence
        expected = offline_frames[stamp_key(frame)]
        assert (frame["file"], frame["label"], frame["prediction"]) == \
            (expected["file"], expected["label"], expected["prediction"])
        assert frame["confidence"] == pytest.approx(expected["confidence"], abs=1e-4) \
            if expected["confidence"] is not None else frame["confidence"] is None
    assert live["accuracy"] == pytest.approx(offline["accuracy"])
    final = json.loads(scores[-1].data)["models"]["emotion/detail"]
    assert (final["scored"], final["unanswered"]) == (8, 0)
