"""Face detection and 68-point landmarks on real (freely licensed) images."""

from pathlib import Path

import numpy as np
import pytest
from face_images import astronaut_gray, face_crop, two_faces

from emotion_perception.core.errors import ModelFileError
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor, default_predictor_path
from emotion_perception.core.pipeline import FaceAnalyzer


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(FaceDetector(upsample=0), LandmarkPredictor())


def test_astronaut_has_one_face_with_landmarks_inside_the_box(analyzer):
    faces = analyzer.analyze(astronaut_gray())
    assert len(faces) == 1
    box, points = faces[0].box, faces[0].landmarks
    assert box.source == "detector"
    assert 150 < box.left < 200 and 60 < box.top < 110 and 70 < box.width < 120
    assert points.shape == (68, 2)
    inside = (points[:, 0] >= box.left - 10) & (points[:, 0] <= box.right + 10)
    inside &= (points[:, 1] >= box.top - 10) & (points[:, 1] <= box.bottom + 15)
    assert inside.all()
    # the eyes are above the mouth and the subject's right eye is left in the image
    assert points[36:42, 1].mean() < points[48:68, 1].mean()
    assert points[36:42, 0].mean() < points[42:48, 0].mean()


def test_all_faces_are_returned_largest_first(analyzer):
    faces = analyzer.analyze(two_faces())
    assert len(faces) == 2
    assert faces[0].box.area > faces[1].box.area
    assert faces[0].box.left < 320 < faces[1].box.left


def test_small_crop_is_upscaled_and_found(analyzer):
    faces = analyzer.analyze(face_crop(48))
    assert len(faces) == 1
    assert faces[0].landmarks.max() < 60 and faces[0].landmarks.min() > -12


def test_blank_frame_has_no_face_but_blank_crop_falls_back_to_whole_image():
    detector = FaceDetector()
    assert detector.detect(np.full((480, 640), 128, np.uint8)) == []
    boxes = detector.detect(np.full((48, 48), 128, np.uint8))
    assert len(boxes) == 1 and boxes[0].source == "whole_image"
    assert FaceDetector(whole_image_fallback=False).detect(np.full((48, 48), 128, np.uint8)) == []


def test_min_size_filters_small_faces():
    assert FaceDetector(min_size=400).detect(astronaut_gray()) == []


def test_bad_detector_parameters_are_rejected():
    with pytest.raises(ValueError, match="upsample"):
        FaceDetector(upsample=7)
    with pytest.raises(ValueError, match="min_size"):
        FaceDetector(min_size=0)


def test_missing_landmark_model_names_the_path(tmp_path: Path):
    missing = tmp_path / "nope.dat"
    with pytest.raises(ModelFileError, match=str(missing)):
        LandmarkPredictor(missing)


def test_corrupt_landmark_model_names_the_path(tmp_path: Path):
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(default_predictor_path().read_bytes()[:5000])
    with pytest.raises(ModelFileError, match=r"corrupt\.dat"):
        LandmarkPredictor(corrupt)
