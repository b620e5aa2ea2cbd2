"""Frame sources without ROS: folders (class layout, flat, manifest), videos, cameras, bags, demo frames."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from emotion_perception.core.errors import SourceError
from emotion_perception.core.params import defaults, validate
from emotion_perception.data.bags import bag_frames
from emotion_perception.data.sources import (
    DEMO_FRAMES,
    camera_frames,
    folder_frames,
    ground_truth_record,
    open_source,
    scan_folder,
    to_encoding,
    video_frames,
)
from emotion_perception.ros.params import SOURCE_NODE_PARAMS

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def pattern(index: int, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    """A BGR frame that differs from every other index (so frames can be told apart after a round trip)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    image = np.stack([(rows * 3 + index * 40) % 256, (cols * 2 + index * 17) % 256,
                      np.full(shape, index * 25 % 256)], axis=2)
    return image.astype(np.uint8)


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """happy/ (2 images + a broken file), sadness/ (1 image), session/ (not an emotion), a flat image."""
    for folder, index in (("happy", 0), ("happy", 1), ("sadness", 2), ("session", 3)):
        (tmp_path / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / folder / f"img{index}.png"), pattern(index))
    cv2.imwrite(str(tmp_path / "loose.png"), pattern(4))
    (tmp_path / "happy" / "broken.png").write_text("not an image")
    (tmp_path / "happy" / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.png").write_bytes(b"")
    return tmp_path


def test_class_folder_frames_carry_labels_and_broken_files_are_skipped(class_folder: Path):
    skipped: list[str] = []
    frames = list(folder_frames(class_folder, skipped.append))
    assert [f.file for f in frames] == ["happy/img0.png", "happy/img1.png", "loose.png", "sadness/img2.png",
                                        "session/img3.png"]
    assert [f.label for f in frames] == ["happy", "happy", None, "sadness", None]
    assert np.array_equal(frames[0].image, pattern(0)) and np.array_equal(frames[3].image, pattern(2))
    assert len(skipped) == 1 and "broken.png" in skipped[0] and "not a readable image" in skipped[0]


def test_manifest_sets_order_labels_and_subjects(tmp_path: Path):
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"f{index}.png"), pattern(index))
    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["path", "label", "subject"], ["f2.png", "Surprise", "S1"], ["f0.png", "", "S2"],
                          ["f1.png", "happy", ""]])
    frames = list(folder_frames(tmp_path))
    assert [(f.file, f.label, f.subject) for f in frames] == [
        ("f2.png", "surprise", "S1"), ("f0.png", None, "S2"), ("f1.png", "happy", None)]


@pytest.mark.parametrize("make", ["missing", "empty", "manifest_without_path"])
def test_unusable_folders_are_refused_with_the_cause(tmp_path: Path, make: str):
    root = tmp_path / "data"
    if make != "missing":
        root.mkdir()
    if make == "manifest_without_path":
        (root / "manifest.csv").write_text("file,label\na.png,happy\n")
    with pytest.raises(SourceError, match=r"not a directory|no images found|needs at least a 'path' column"):
        scan_folder(root)


def test_looping_folder_repeats_and_a_folder_of_broken_files_stops(class_folder: Path, tmp_path: Path):
    frames = list(itertools.islice(open_source("folder", str(class_folder), loop=True), 12))
    assert [f.file for f in frames[5:10]] == [f.file for f in frames[:5]]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_text("x")
    looped = open_source("folder", str(broken), loop=True)
    with pytest.raises(SourceError, match="no readable frame"):
        next(looped)


def write_video(path: Path, count: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (80, 60))
    for index in range(count):
        writer.write(pattern(index))
    writer.release()


def test_video_frames_in_order_with_increasing_offsets_and_loop(tmp_path: Path):
    path = tmp_path / "clip.avi"
    write_video(path, 5)
    frames = list(video_frames(path))
    assert len(frames) == 5 and frames[0].image.shape == (60, 80, 3)
    means = [f.image[:, :, 2].mean() for f in frames]  # red channel = index * 25 (JPEG-compressed)
    assert means == sorted(means) and means[-1] - means[0] > 80
    assert [f.offset_ns for f in frames] == sorted(f.offset_ns for f in frames)
    assert len(list(itertools.islice(open_source("video", str(path), loop=True), 12))) == 12


def test_bad_videos_and_cameras_are_refused(tmp_path: Path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="not a readable video"):
        video_frames(text)
    with pytest.raises(SourceError, match="no such video"):
        video_frames(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match="no such device"):
        camera_frames("/dev/video-missing")
    with pytest.raises(SourceError, match="camera 63: cannot open"):
        camera_frames("63")


def image_message(index: int, stamp_ns: int, encoding: str = "bgr8") -> object:
    image = pattern(index) if encoding == "bgr8" else cv2.cvtColor(pattern(index), cv2.COLOR_BGR2GRAY)
    Image = TYPESTORE.types["sensor_msgs/msg/Image"]
    Header = TYPESTORE.types["std_msgs/msg/Header"]
    Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return Image(Header(Time(sec, nanosec), "cam"), image.shape[0], image.shape[1], encoding, 0,
                 image.strides[0], np.frombuffer(image.tobytes(), np.uint8))


def write_bag(path: Path, storage: StoragePlugin = StoragePlugin.SQLITE3, *, second_topic: bool = False,
              bad_frame: bool = False) -> list[int]:
    """Three frames 0.5 s apart on /camera/image (received 10 ms after their stamps), labels for two."""
    String = TYPESTORE.types["std_msgs/msg/String"]
    stamps = [100_000_000_000 + i * 500_000_000 for i in range(3)]
    with Writer(path, version=9, storage_plugin=storage) as writer:
        images = writer.add_connection("/camera/image", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        truth = writer.add_connection("/ground_truth/emotion", "std_msgs/msg/String", typestore=TYPESTORE)
        other = writer.add_connection("/other/image", "sensor_msgs/msg/Image", typestore=TYPESTORE) \
            if second_topic else None
        for index, stamp in enumerate(stamps):
            message = image_message(index, stamp, "mono8" if index == 1 else "bgr8")
            if bad_frame and index == 1:
                message.step += 1  # data no longer matches step * height
            writer.write(images, stamp + 10_000_000, TYPESTORE.serialize_cdr(message, "sensor_msgs/msg/Image"))
            if index < 2:
                sec, nanosec = divmod(stamp, 1_000_000_000)
                record = {"stamp": {"sec": sec, "nanosec": nanosec}, "label": ["happy", "fear"][index],
                          "subject": "S9", "file": f"f{index}.png"}
                writer.write(truth, stamp + 10_000_000,
                             TYPESTORE.serialize_cdr(String(json.dumps(record)), "std_msgs/msg/String"))
            if other is not None:
                writer.write(other, stamp, TYPESTORE.serialize_cdr(message, "sensor_msgs/msg/Image"))
    return stamps


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_bag_frames_keep_stamps_pixels_labels_and_timeline(tmp_path: Path, storage: StoragePlugin):
    stamps = write_bag(tmp_path / "bag", storage)
    frames = list(bag_frames(tmp_path / "bag"))
    assert [f.stamp_ns for f in frames] == stamps
    assert [f.offset_ns for f in frames] == [0, 500_000_000, 1_000_000_000]
    assert [(f.label, f.subject) for f in frames] == [("happy", "S9"), ("fear", "S9"), (None, None)]
    assert frames[0].file == "f0.png"
    assert np.array_equal(frames[0].image, pattern(0))
    assert np.array_equal(frames[1].image[:, :, 0], cv2.cvtColor(pattern(1), cv2.COLOR_BGR2GRAY))
    looped = list(itertools.islice(open_source("bag", str(tmp_path / "bag"), loop=True), 7))
    assert [f.offset_ns for f in looped] == [i * 500_000_000 for i in range(7)]
    assert [f.stamp_ns for f in looped] == stamps * 2 + stamps[:1]


def test_bag_topic_choice_and_bad_messages(tmp_path: Path):
    write_bag(tmp_path / "two", second_topic=True)
    with pytest.raises(SourceError, match=r"several image topics \(/camera/image, /other/image\)"):
        bag_frames(tmp_path / "two")
    assert len(list(bag_frames(tmp_path / "two", "camera/image"))) == 3
    with pytest.raises(SourceError, match=r"no image topic /nothing.*ground_truth/emotion"):
        bag_frames(tmp_path / "two", "/nothing")
    write_bag(tmp_path / "bad", bad_frame=True)
    skipped: list[str] = []
    assert len(list(bag_frames(tmp_path / "bad", on_skip=skipped.append))) == 2
    assert len(skipped) == 1 and "step" in skipped[0]


def test_unreadable_bags_are_refused(tmp_path: Path):
    with pytest.raises(SourceError, match="no such bag"):
        bag_frames(tmp_path / "missing")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9, garbage")
    with pytest.raises(SourceError, match="not a readable ROS 2 bag"):
        bag_frames(corrupt)


def test_output_encodings_and_ground_truth_record():
    bgr = pattern(3)
    assert np.array_equal(to_encoding(bgr, "rgb8")[:, :, 0], bgr[:, :, 2])
    assert to_encoding(bgr, "mono8").shape == (60, 80)
    with pytest.raises(SourceError, match="unsupported output encoding 'rgba8'"):
        to_encoding(bgr, "rgba8")
    frame = next(folder_frames(DEMO_FRAMES))
    assert ground_truth_record(7, 9, frame) == {"stamp": {"sec": 7, "nanosec": 9}, "label": "happy",
                                                "subject": "astronaut", "file": "demo_00.jpg"}


@pytest.mark.parametrize(("values", "message"), [
    ({"rate": 0.0}, "rate must be >= 0.1, got 0.0"),
    ({"rate": "fast"}, "rate must be of type float"),
    ({"loop": 1}, "loop must be of type bool"),
    ({"wait_for_subscribers": True}, "wait_for_subscribers must be of type int"),
    ({"source_type": "usb"}, "source_type must be one of folder, video, camera, bag, got 'usb'"),
    ({"encoding": "rgba8"}, "encoding must be one of bgr8, mono8, rgb8"),
    ({"speed": 2.0}, "unknown parameter 'speed'"),
])
def test_bad_parameters_are_rejected_with_the_reason(values: dict, message: str):
    problems = validate(SOURCE_NODE_PARAMS, values)
    assert len(problems) == 1 and message in problems[0], problems


def test_parameter_defaults_pass_their_own_checks():
    assert validate(SOURCE_NODE_PARAMS, defaults(SOURCE_NODE_PARAMS)) == []
    assert validate(SOURCE_NODE_PARAMS, {"rate": 5.0, "rate_factor": 2.0, "wait_for_subscribers": 2}) == []


def test_bundled_demo_frames_are_small_licensed_and_show_a_happy_face_then_none():
    from emotion_perception.core.faces import FaceDetector
    from emotion_perception.core.landmarks import LandmarkPredictor
    from emotion_perception.core.pipeline import EmotionPipeline, FaceAnalyzer
    from emotion_perception.models.landmark_model import EmotionModel

    assert "public domain" in (DEMO_FRAMES / "PROVENANCE.md").read_text()
    assert sum(p.stat().st_size for p in DEMO_FRAMES.iterdir() if p.is_file()) < 1_000_000
    frames = list(folder_frames(DEMO_FRAMES))
    assert len(frames) == 11 and [f.label for f in frames].count(None) == 1
    model, landmarks = EmotionModel.load(), LandmarkPredictor()
    for upsample in (0, 1):
        pipeline = EmotionPipeline(FaceAnalyzer(FaceDetector(upsample), landmarks), model)
        for frame in frames:
            faces = pipeline.run(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY))
            assert [face.label for face in faces] == ([] if frame.label is None else ["happy"]), frame.file
