"""Dataset bags (bag from-dataset) read back with rosbags, offline evaluation (bag evaluate) against the
pipeline called directly, scoring by stamp, and the errors for damaged bags, topics and types."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from bag_data import FILES, expected_pixels, make_dataset
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from emotion_perception.attacks.injector import FrameAttacker
from emotion_perception.core.errors import BagError
from emotion_perception.core.frames import frame_to_gray
from emotion_perception.core.params import defaults
from emotion_perception.core.pipeline import EmotionPipeline, FaceAnalyzer
from emotion_perception.data.bags import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, BagReader, write_dataset_bag
from emotion_perception.experiments.scoring import Scoreboard
from emotion_perception.models.landmark_model import EmotionModel
from emotion_perception.ros.params import INJECTOR_PARAMS

START_NS = 1_700_000_000_000_000_000
CLI = [sys.executable, "-m", "emotion_perception"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "faces")


@pytest.fixture(scope="module")
def bag(dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "faces_bag"
    result = cli("bag", "from-dataset", dataset, out, "--fps", "30", "--storage", "mcap", "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def evaluated(bag: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    result = cli("bag", "evaluate", bag, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def read_all(path: Path) -> dict[str, list[tuple[int, object]]]:
    """Every message of a bag by topic, read with rosbags' own AnyReader (independent of bags.py)."""
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        out: dict[str, list[tuple[int, object]]] = {}
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_dataset_bag_reads_back_frame_exact_with_labels_and_stamps(dataset: Path, tmp_path: Path, storage: str):
    out = tmp_path / "bag"
    summary = write_dataset_bag(dataset, out, fps=30, storage=storage, start_ns=START_NS)
    assert (summary.frames, summary.labelled, summary.upscaled, summary.skipped) == (8, 8, 1, [])
    metadata = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == 9 and metadata["storage_identifier"] == storage
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in metadata["topics_with_message_count"]}
    assert types == {IMAGE_TOPIC: "sensor_msgs/msg/Image", GROUND_TRUTH_TOPIC: "std_msgs/msg/String"}
    assert all(t["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
               for t in metadata["topics_with_message_count"])
    qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
           for t in metadata["topics_with_message_count"]}
    assert qos[IMAGE_TOPIC] == [] and [(q["reliability"], q["durability"]) for q in qos[GROUND_TRUTH_TOPIC]] == [
        ("reliable", "transient_local")]  # ros2 bag play offers it as image_source_node does

    messages = read_all(out)
    images, truth = messages[IMAGE_TOPIC], messages[GROUND_TRUTH_TOPIC]
    order = sorted(FILES)  # class folders, then file names
    assert len(images) == len(truth) == len(order)
    for index, ((timestamp, image), (truth_time, record), name) in enumerate(zip(images, truth, order)):
        stamp = START_NS + round(index * 1e9 / 30)
        assert timestamp == truth_time == stamp
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == stamp
        expected = expected_pixels(dataset / name)
        assert image.encoding == ("mono8" if expected.ndim == 2 else "bgr8")
        pixels = np.asarray(image.data).reshape(image.height, image.step)[:, : expected[0].size]
        assert np.array_equal(pixels.reshape(expected.shape), expected), name
        assert json.loads(record.data) == {"stamp": {"sec": stamp // 10**9, "nanosec": stamp % 10**9},
                                           "label": name.split("/")[0], "subject": None, "file": name}
    with BagReader(out) as reader:  # the package's own reader agrees
        frames = list(reader.frames())
    assert [f.truth["file"] for f in frames] == order
    assert all(np.array_equal(f.pixels(), expected_pixels(dataset / f.truth["file"])) for f in frames)


def direct_predictions(bag: Path, attack: dict | None = None) -> dict[int, tuple[str | None, float | None]]:
    """stamp -> (label, confidence) of the primary face, from EmotionPipeline.run on each frame of the bag."""
    pipeline = EmotionPipeline(FaceAnalyzer(), EmotionModel.load())
    attacker = FrameAttacker({**defaults(INJECTOR_PARAMS), **attack}) if attack else None
    out = {}
    with BagReader(bag) as reader:
        for index, frame in enumerate(reader.frames()):
            fields = [frame.encoding, frame.height, frame.width, frame.step, frame.data, frame.is_bigendian]
            if attacker is not None:
                attacked = attacker.attack_frame(*fields, index).pixels
                fields[3:5] = attacked.strides[0], attacked.tobytes()
            faces = pipeline.run(frame_to_gray(*fields))
            out[frame.stamp_ns] = (faces[0].label, faces[0].confidence) if faces else (None, None)
    return out


def frame_predictions(results: dict) -> dict[int, tuple[str | None, float | None]]:
    frames = results["models"]["emotion/detail"]["frames"]
    return {f["stamp"]["sec"] * 10**9 + f["stamp"]["nanosec"]: (f["prediction"], f["confidence"]) for f in frames}


def test_bag_evaluate_predicts_what_the_pipeline_says_on_the_images(bag: Path, evaluated: Path):
    results = json.loads((evaluated / "results.json").read_text())
    direct = direct_predictions(bag)
    offline = frame_predictions(results)
    assert set(offline) == set(direct) and len(direct) == 8
    for stamp, (label, confidence) in direct.items():
        assert offline[stamp][0] == label
        assert offline[stamp][1] == pytest.approx(confidence, abs=1e-4)
    assert sum(label is not None for label, _ in direct.values()) == 6  # the astronaut found in 6 frames
    truth = {f["stamp"]["sec"] * 10**9 + f["stamp"]["nanosec"]: f["label"]
             for f in results["models"]["emotion/detail"]["frames"]}
    correct = sum(direct[s][0] == truth[s] for s in direct)
    assert results["accuracy"] == pytest.approx(correct / 8)
    assert results["n"] == 8 and results["dropped"] == 0 and results["n_no_face"] == 2
    assert set(results["per_class_recall"]) >= {"happy", "neutral", "surprise"}
    assert "| `emotion/detail` |" in (evaluated / "report.md").read_text()

    # the results bag: the node's output topics with the frames' stamps
    messages = read_all(evaluated / "results_bag")
    details = [json.loads(m.data) for _, m in messages["/emotion/detail"]]
    assert [d["stamp"]["sec"] * 10**9 + d["stamp"]["nanosec"] for d in details] == sorted(direct)
    assert [t for t, _ in messages["/emotion/detail"]] == sorted(direct)
    labels = [(t, m.data) for t, m in messages["/emotion"]]
    assert labels == [(s, direct[s][0]) for s in sorted(direct) if direct[s][0] is not None]
    assert all(d["version"] == 2 and d["model"].startswith("landmark_forest:") for d in details)


def test_bag_evaluate_attacks_every_frame_before_classifying(bag: Path, tmp_path: Path):
    out = tmp_path / "attacked"
    result = cli("bag", "evaluate", bag, "--out", out, "--attack", "gaussian", "--seed", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["attack"] == {"name": "gaussian", "epsilon": 0.01, "seed": 3}
    direct = direct_predictions(bag, {"attack": "gaussian", "seed": 3})
    offline = frame_predictions(results)
    assert {s: p[0] for s, p in offline.items()} == {s: p[0] for s, p in direct.items()}
    assert all(offline[s][1] == pytest.approx(direct[s][1], abs=1e-4) for s in direct if direct[s][1] is not None)


def test_bag_evaluate_runs_the_tamper_check_and_reports_its_flag_rate(bag: Path, evaluated: Path, tmp_path: Path):
    clean = json.loads((evaluated / "results.json").read_text())["tamper"]
    assert clean["faces_checked"] == 6 and clean["flagged"] == 0 and clean["accuracy_not_flagged"] is not None
    boxed = tmp_path / "boxed"
    result = cli("bag", "evaluate", bag, "--out", boxed, "--attack", "jaw_box", "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((boxed / "results.json").read_text())
    tamper = results["tamper"]
    assert tamper["faces_checked"] >= 4 and tamper["flag_rate"] >= 0.75
    assert tamper["flag_rate"] == pytest.approx(tamper["flagged"] / tamper["faces_checked"])
    assert "## Tamper check" in (boxed / "report.md").read_text()
    details = [json.loads(m.data) for _, m in read_all(boxed / "results_bag")["/emotion/detail"]]
    faces = [face for d in details for face in d["faces"]]
    assert all(set(face["occlusion"]) == {"upper", "lower"} and "flag" in face["tampered"] for face in faces)
    off = tmp_path / "off"
    assert cli("bag", "evaluate", bag, "--out", off, "--no-tamper-check", "--quiet").returncode == 0
    assert json.loads((off / "results.json").read_text())["tamper"] is None


def test_bag_evaluate_passes_any_injector_parameter_and_refuses_bad_ones(bag: Path, tmp_path: Path):
    out = tmp_path / "salted"
    result = cli("bag", "evaluate", bag, "--out", out, "--attack", "salt_pepper", "--attack-param",
                 "noise_amount=0.2", "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["attack"]["params"] == {"noise_amount": 0.2}
    direct = direct_predictions(bag, {"attack": "salt_pepper", "noise_amount": 0.2})
    assert {s: p[0] for s, p in frame_predictions(results).items()} == {s: p[0] for s, p in direct.items()}
    for bad, words in (("noise_amount=2", "noise_amount must be <= 1.0"), ("colour=red", "NAME=VALUE"),
                       ("steps=many", "steps must be a int")):
        refused = cli("bag", "evaluate", bag, "--out", tmp_path / "refused", "--attack", "pgd", "--attack-param",
                      bad, "--quiet")
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and words in lines[0], refused.stderr
        assert not (tmp_path / "refused").exists()


def test_bag_evaluate_with_the_cnn_predicts_what_the_cnn_pipeline_says(bag: Path, tmp_path: Path):
    from emotion_perception.core.faces import FaceDetector
    from emotion_perception.models.cnn import CnnClassifier

    out = tmp_path / "cnn"
    result = cli("bag", "evaluate", bag, "--out", out, "--model", "cnn", "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    details = [json.loads(m.data) for _, m in read_all(out / "results_bag")["/emotion/detail"]]
    assert details and all(d["model"].startswith("cnn_small_resnet:") for d in details)
    pipeline = EmotionPipeline(FaceAnalyzer(FaceDetector(0, min_size=1, whole_image_fallback=False)),
                               CnnClassifier.load())
    direct = {}
    with BagReader(bag) as reader:
        for frame in reader.frames():
            gray = frame_to_gray(frame.encoding, frame.height, frame.width, frame.step, frame.data,
                                 frame.is_bigendian)
            faces = pipeline.run(gray)
            direct[frame.stamp_ns] = faces[0].label if faces else None
    assert {s: p[0] for s, p in frame_predictions(results).items()} == direct
    assert sum(label is not None for label in direct.values()) == 6


def test_bag_evaluate_replaces_an_earlier_report_but_nothing_else(bag: Path, evaluated: Path, tmp_path: Path):
    copy = tmp_path / "again"
    shutil.copytree(evaluated, copy)
    result = cli("bag", "evaluate", bag, "--out", copy, "--quiet")
    assert result.returncode == 0, result.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = cli("bag", "evaluate", bag, "--out", other, "--quiet")
    assert result.returncode == 2 and "not an earlier report folder" in result.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def damaged_copies(bags: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A truncated copy of each bag (by storage), and a bag with broken metadata."""
    out = {}
    for storage, bag in bags.items():
        path = tmp_path / f"truncated_{storage}"
        shutil.copytree(bag, path)
        data_file = next(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
        out[f"truncated {storage}"] = path
    broken = tmp_path / "metadata"
    shutil.copytree(bags["mcap"], broken)
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n")
    out["broken metadata"] = broken
    return out


def assert_one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emotion-perception bag: error:"), result.stderr
    assert all(part in lines[0] for part in parts), lines[0]


def no_leftovers(folder: Path, name: str) -> bool:
    return not any(p.name == name or p.name.startswith(f".{name}.") for p in folder.iterdir())


def test_damaged_bags_give_one_line_errors_and_leave_nothing(bag: Path, dataset: Path, tmp_path: Path):
    sqlite_bag = tmp_path / "sqlite_bag"
    write_dataset_bag(dataset, sqlite_bag, storage="sqlite3")
    for what, damaged in damaged_copies({"mcap": bag, "sqlite3": sqlite_bag}, tmp_path).items():
        result = cli("bag", "evaluate", damaged, "--out", tmp_path / "report", "--quiet")
        assert_one_line_error(result, str(damaged), "not a readable ROS 2 bag")
        assert no_leftovers(tmp_path, "report"), what


def test_unknown_topics_and_wrong_types_are_named(bag: Path, tmp_path: Path):
    result = cli("bag", "evaluate", bag, "--out", tmp_path / "r", "--topic", "/camera/image_raw")
    assert_one_line_error(result, "no image topic /camera/image_raw", "/image (sensor_msgs/msg/Image)")
    result = cli("bag", "evaluate", bag, "--out", tmp_path / "r", "--topic", "ground_truth/emotion")
    assert_one_line_error(result, "holds std_msgs/msg/String, expected sensor_msgs/msg/Image")
    result = cli("bag", "evaluate", tmp_path / "missing", "--out", tmp_path / "r")
    assert_one_line_error(result, "no such bag")
    assert no_leftovers(tmp_path, "r")


def write_raw_bag(path: Path, truth_text: str | None) -> None:
    """A bag with one astronaut frame on /image and optionally one ground-truth message with this text."""
    from face_images import astronaut_gray

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    gray = astronaut_gray()
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=0),
                                          frame_id="camera")
    image = types["sensor_msgs/msg/Image"](header=header, height=512, width=512, encoding="mono8",
                                           is_bigendian=0, step=512, data=gray.reshape(-1))
    with Writer(path, version=9) as writer:
        connection = writer.add_connection("/image", "sensor_msgs/msg/Image", typestore=store)
        writer.write(connection, 5 * 10**9, store.serialize_cdr(image, "sensor_msgs/msg/Image"))
        if truth_text is not None:
            connection = writer.add_connection("/ground_truth/emotion", "std_msgs/msg/String", typestore=store)
            message = types["std_msgs/msg/String"](data=truth_text)
            writer.write(connection, 5 * 10**9, store.serialize_cdr(message, "std_msgs/msg/String"))


def test_bags_without_usable_ground_truth_are_refused_mid_run_without_leftovers(tmp_path: Path):
    no_truth, bad_truth = tmp_path / "no_truth", tmp_path / "bad_truth"
    write_raw_bag(no_truth, None)
    write_raw_bag(bad_truth, "not json")
    assert_one_line_error(cli("bag", "evaluate", no_truth, "--out", tmp_path / "r"),
                          "no /ground_truth/emotion topic")
    assert_one_line_error(cli("bag", "evaluate", bad_truth, "--out", tmp_path / "r", "--quiet"),
                          "ground-truth message at 5000000000 ns is not a record")
    assert no_leftovers(tmp_path, "r")


def test_from_dataset_never_leaves_half_a_bag(dataset: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    (broken / "happy").mkdir(parents=True)
    (broken / "happy" / "a.png").write_bytes(b"not a png")
    assert_one_line_error(cli("bag", "from-dataset", broken, tmp_path / "out", "--quiet"), "no readable image")
    assert no_leftovers(tmp_path, "out")
    existing = tmp_path / "existing"
    existing.mkdir()
    assert_one_line_error(cli("bag", "from-dataset", dataset, existing, "--quiet"), "already exists")
    assert list(existing.iterdir()) == []
    with pytest.raises(BagError, match="unknown storage"):
        write_dataset_bag(dataset, tmp_path / "x", storage="rosbag1")
    assert no_leftovers(tmp_path, "x")


def test_scoreboard_matches_by_stamp_and_counts_drops():
    board = Scoreboard(["a/detail", "b/detail"])
    for sec, label in enumerate(["happy", "sadness", "happy", "neutral"]):
        board.add_truth({"stamp": {"sec": sec, "nanosec": 0}, "label": label, "subject": None, "file": f"{sec}"})
    face = {"label": "happy", "confidence": 0.9}
    for sec in (0, 1, 3):  # model a: frame 2 dropped; frame 3 without a face
        board.add_detail("a/detail", {"stamp": {"sec": sec, "nanosec": 0}, "model": "A",
                                      "faces": [face] if sec != 3 else []})
    board.add_detail("b/detail", {"stamp": {"sec": 9, "nanosec": 0}, "model": "B", "faces": [face]})
    assert board.running()["models"]["a/detail"] == {"model": "A", "scored": 3, "correct": 1,
                                                     "accuracy": pytest.approx(1 / 3), "unanswered": 1}
    assert not board.complete()
    results = board.results("test", "here")
    a, b = results["models"]["a/detail"], results["models"]["b/detail"]
    assert (a["answered"], a["dropped"], a["n_no_face"]) == (3, 1, 1)
    assert a["accuracy"] == pytest.approx(1 / 3) and a["accuracy_with_dropped"] == pytest.approx(1 / 4)
    assert results["accuracy"] == a["accuracy"] and results["dropped"] == 1
    assert (b["answered"], b["dropped"], b["accuracy"], b["answers_without_ground_truth"]) == (0, 4, None, 1)
    with pytest.raises(ValueError, match="not one of"):
        board.add_truth({"stamp": {"sec": 7, "nanosec": 0}, "label": "bored"})
    with pytest.raises(ValueError, match="malformed"):
        board.add_detail("a/detail", {"faces": []})
