"""The emotion CNNs: architectures, safe weight files, crops and augmentation, training, CLI functions."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from face_images import astronaut_gray, face_crop

from emotion_perception.core.errors import CnnFileError, EmotionPerceptionError
from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.pipeline import EmotionPipeline, FaceAnalyzer, classify_faces
from emotion_perception.models import cnn_training
from emotion_perception.models.augment import geometric
from emotion_perception.models.balance import balancing_weights
from emotion_perception.models.cnn import (
    ARCHS,
    CnnClassifier,
    build_model,
    count_parameters,
    crops_to_tensor,
    default_cnn_path,
    interocular_error,
    load_cnn,
    multitask_loss,
    resolve_device,
    save_cnn,
)
from emotion_perception.models.cnn_training import EarlyStopping, TrainSettings, lr_factor, train_cnn
from emotion_perception.models.crops import (
    align_matrix,
    aligned_crop,
    crop_face,
    landmarks_from_crop,
    landmarks_in_crop,
)

torch.set_num_threads(1)


def header_for(arch: str, size: int = 48, labels: tuple[str, ...] = ("happy", "neutral", "sadness")) -> dict:
    return {"arch": arch, "labels": list(labels), "input_size": size, "mean": 0.5, "std": 0.25}


def test_small_resnet_has_the_papers_parameter_count():
    count = count_parameters(build_model("small_resnet", 7, 48))
    print(f"small_resnet parameters (7 classes): {count}")
    assert 0.25e6 < count < 0.30e6


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [48, 64, 112])
def test_every_arch_maps_a_batch_of_grey_crops_to_class_logits(arch: str, size: int):
    model = build_model(arch, 8, size).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, size, size))
    assert out.shape == (3, 8)
    assert torch.isfinite(out).all()


def test_multitask_head_gives_landmarks_inside_the_crop():
    model = build_model("multitask", 8, 64).eval()
    with torch.no_grad():
        logits, points = model.forward_both(torch.randn(2, 1, 64, 64))
    assert logits.shape == (2, 8) and points.shape == (2, 68, 2)
    assert points.min() >= 0 and points.max() <= 1


def test_bad_arch_and_input_size_are_rejected():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", 7, 48)
    with pytest.raises(ValueError, match="input size"):
        build_model("small_resnet", 7, 50)


@pytest.mark.parametrize("arch", ["small_resnet", "dcnn", "multitask"])
def test_saved_weights_load_to_the_same_outputs(tmp_path: Path, arch: str):
    model = build_model(arch, 3, 48).eval()
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "model.pt"
    save_cnn(path, model, {**header_for(arch), "name": "roundtrip"})
    loaded, header = load_cnn(path)
    assert not loaded.training
    assert header["arch"] == arch and header["labels"] == ["happy", "neutral", "sadness"]
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_weight_file_holds_tensors_only(tmp_path: Path):
    path = tmp_path / "model.pt"
    save_cnn(path, build_model("small_resnet", 3, 48), header_for("small_resnet"))
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"header", "state_dict"}
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_corrupt_truncated_and_mismatched_files_raise_one_clear_error(tmp_path: Path):
    assert issubclass(CnnFileError, EmotionPerceptionError)
    good = tmp_path / "good.pt"
    save_cnn(good, build_model("dcnn", 3, 48), header_for("dcnn"))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(CnnFileError, match="not a readable"):
        load_cnn(garbage)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CnnFileError, match="not a readable"):
        load_cnn(truncated)

    mismatched = tmp_path / "mismatched.pt"  # DCNN weights under a small ResNet header
    payload = torch.load(good, weights_only=True)
    save_cnn(mismatched, build_model("small_resnet", 3, 48), header_for("small_resnet"))
    wrong = torch.load(mismatched, weights_only=True)
    torch.save({"header": wrong["header"], "state_dict": payload["state_dict"]}, mismatched)
    with pytest.raises(CnnFileError, match="do not match the header"):
        load_cnn(mismatched)

    with pytest.raises(CnnFileError, match="no such file"):
        load_cnn(tmp_path / "absent.pt")


def test_save_refuses_a_header_without_preprocessing(tmp_path: Path):
    with pytest.raises(ValueError, match="lacks"):
        save_cnn(tmp_path / "m.pt", build_model("dcnn", 3, 48), {"arch": "dcnn", "labels": ["a", "b", "c"]})


def test_multitask_loss_matches_a_hand_computation():
    target = torch.full((1, 68, 2), 0.5)
    target[0, 36] = torch.tensor([0.3, 0.5])  # outer eye corners 0.4 apart
    target[0, 45] = torch.tensor([0.7, 0.5])
    pred = target + torch.tensor([0.03, 0.04])  # every point 0.05 off
    logits = torch.zeros(1, 2)  # cross-entropy ln 2
    labels = torch.tensor([1])
    assert interocular_error(pred, target).item() == pytest.approx(0.05 / 0.4)
    expected = 0.4 * (0.05 / 0.4) + 0.6 * math.log(2)
    assert multitask_loss(logits, labels, pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_lr_schedules_scale_to_the_epoch_budget():
    factors = [lr_factor(e, 200, "steps") for e in (0, 79, 80, 119, 120, 160, 180, 199)]
    assert factors == [1.0, 1.0, 0.1, 0.1, 0.01, 0.001, 0.0005, 0.0005]
    assert lr_factor(4, 10, "steps") == 0.1 and lr_factor(3, 10, "steps") == 1.0
    cosine = [lr_factor(e, 30, "cosine") for e in range(30)]
    assert cosine[0] == 0.1 and cosine[1] == 1.0 and 0 < cosine[-1] < 0.01  # warm-up, then down to near zero
    assert all(a > b for a, b in itertools.pairwise(cosine[1:]))


def test_balancing_gives_datasets_and_classes_their_shares():
    labels = np.array(["happy"] * 90 + ["fear"] * 10 + ["happy"] * 5 + ["fear"] * 5)
    strata = np.array(["fer"] * 100 + ["ck"] * 10)
    equal = balancing_weights(labels, strata, "equal")
    assert equal[strata == "ck"].sum() == pytest.approx(0.5) and equal[:90].sum() == pytest.approx(0.25)
    root = balancing_weights(labels, strata, "sqrt")
    assert root[strata == "fer"].sum() / root[strata == "ck"].sum() == pytest.approx(np.sqrt(100 / 10))
    assert root[:90].sum() / root[90:100].sum() == pytest.approx(np.sqrt(90 / 10))
    assert balancing_weights(labels, strata, "none") == pytest.approx(np.full(110, 1 / 110))


def test_crop_of_a_whole_image_box_is_the_image_and_landmarks_map_both_ways():
    crop = face_crop(48)
    box = FaceBox(0, 0, 47, 47, 0.0, "whole_image")
    assert np.array_equal(crop_face(crop, box, 48), crop)
    detected = FaceBox(150, 60, 250, 160, 1.0, "detector")
    points = np.random.default_rng(0).uniform(150, 250, (68, 2))
    back = landmarks_from_crop(landmarks_in_crop(points, detected), detected)
    assert np.allclose(back, points, atol=1e-3)


def test_crop_outside_the_image_repeats_the_border():
    gray = np.zeros((100, 100), np.uint8)
    gray[:, 50:] = 200
    crop = crop_face(gray, FaceBox(60, 10, 140, 90, 1.0, "detector"), 48)  # right half lies outside
    assert crop.shape == (48, 48)
    assert crop[:, -5:].min() == 200  # padded with the border value, not black


def whole_image_aligned_crop(gray: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop as first written: the whole image halved until the warp shrinks by at most 2."""
    points = np.asarray(landmarks, np.float64)
    matrix = align_matrix(points, size)
    while np.hypot(*matrix[:, 0]) < 0.5 and min(gray.shape[:2]) >= 4:
        gray, points = cv2.pyrDown(gray), points / 2
        matrix = align_matrix(points, size)
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_aligned_crop_halves_only_its_window_and_gives_the_whole_image_crop():
    """Faces small and large (up to 16 halvings' worth), rotated, inside and partly or wholly outside the frame:
    the crop equals the whole-image one to within a grey level (the warp's fixed-point rounding)."""
    gray = cv2.resize(astronaut_gray(), (1100, 800))
    [face] = FaceAnalyzer(FaceDetector()).analyze(astronaut_gray())
    base = face.landmarks - face.landmarks.mean(axis=0)
    rng = np.random.default_rng(0)
    for _ in range(300):
        angle, scale = rng.uniform(-0.6, 0.6), np.exp(rng.uniform(np.log(0.1), np.log(8)))
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = base @ rotation.T + rng.uniform((-300, -300), (1400, 1100))
        crop, reference = aligned_crop(gray, points, 48), whole_image_aligned_crop(gray, points, 48)
        assert np.abs(crop.astype(int) - reference).max() <= 1


def test_augmented_landmarks_follow_the_pixels():
    image = torch.zeros(16, 1, 48, 48)
    image[:, :, 19:22, 11:14] = 1.0  # a bright 3x3 spot centred on pixel (12, 20)
    spot = torch.tensor([12.5 / 48, 20.5 / 48])
    points = spot.expand(16, 68, 2).clone()
    out, moved = geometric(image, torch.Generator().manual_seed(3), points)
    for picture, point in zip(out, moved):
        y, x = np.unravel_index(int(picture[0].argmax()), (48, 48))
        assert abs(x + 0.5 - float(point[0, 0]) * 48) <= 1.5
        assert abs(y + 0.5 - float(point[0, 1]) * 48) <= 1.5


def stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two synthetic classes that survive flips: horizontal vs vertical stripes with noise."""
    rng = np.random.default_rng(seed)
    wave = (np.sin(np.arange(48) / 2.0) > 0) * 120.0
    crops = rng.normal(60, 25, (n, 48, 48))
    labels = np.array(["happy", "sadness"] * (n // 2))
    crops[labels == "happy"] += wave[None, :, None]
    crops[labels == "sadness"] += wave[None, None, :]
    return np.clip(crops, 0, 255).astype(np.uint8), labels


def test_training_lowers_the_loss_and_learns_synthetic_classes():
    crops, labels = stripes(128, 0)
    settings = TrainSettings(epochs=3, batch_size=32, val_fraction=0.0, device="cpu", progress=False)
    result = train_cnn(crops, labels, settings)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    test_crops, test_labels = stripes(64, 1)
    proba = result.classifier.predict_crops(test_crops)
    predicted = np.array(result.classifier.labels)[proba.argmax(1)]
    assert (predicted == test_labels).mean() > 0.9
    assert result.classifier.header["labels"] == ["happy", "sadness"]


def test_multitask_training_and_dcnn_early_stopping_run_and_save(tmp_path: Path):
    crops, labels = stripes(64, 2)
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0.2, 0.8, (64, 68, 2)).astype(np.float32)
    multitask = train_cnn(crops, labels, TrainSettings(arch="multitask", epochs=2, batch_size=32, device="cpu",
                                                       val_fraction=0.25, progress=False), landmarks=landmarks)
    assert multitask.classifier.header["best_epoch"] in (1, 2)
    dcnn = train_cnn(crops, labels, TrainSettings(arch="dcnn", epochs=2, batch_size=32, device="cpu",
                                                  val_fraction=0.25, progress=False))
    assert [row["lr"] for row in dcnn.history] == [1e-3, 1e-3]  # Nadam's default LR, no plateau yet
    path = tmp_path / "dcnn.pt"
    save_cnn(path, dcnn.classifier.model, dcnn.classifier.header)
    assert CnnClassifier.load(path).predict_crops(crops[:2]).shape == (2, 2)


def test_early_stopping_waits_patience_epochs_without_improvement():
    stopper = EarlyStopping(patience=3)
    decisions = [stopper.step(v) for v in (1.0, 0.9, 0.95, 0.91, 0.89, 0.9, 0.9, 0.9)]
    assert decisions == [False, False, False, False, False, False, False, True]


def test_multitask_without_landmarks_is_refused():
    crops, labels = stripes(8, 0)
    with pytest.raises(ValueError, match="landmarks"):
        train_cnn(crops, labels, TrainSettings(arch="multitask", epochs=1, progress=False))


def test_cuda_request_without_a_gpu_falls_back_with_a_message():
    if torch.cuda.is_available():
        assert resolve_device("cuda") == ("cuda", None)
    else:
        device, warning = resolve_device("cuda")
        assert device == "cpu" and "not available" in warning
    assert resolve_device("cpu") == ("cpu", None)
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_crops_to_tensor_normalises_with_the_header_values():
    x = crops_to_tensor(np.full((2, 48, 48), 255, np.uint8), {"mean": 0.5, "std": 0.25})
    assert x.shape == (2, 1, 48, 48) and torch.allclose(x, torch.full_like(x, 2.0))
    ramp = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    per_crop = crops_to_tensor(np.stack([ramp, ramp // 2 + 100]), {"mean": 0.0, "std": 1.0,
                                                                   "per_crop_standardisation": True})
    assert torch.allclose(per_crop.mean(dim=(2, 3)), torch.zeros(2, 1), atol=1e-5)
    # a darker, lower-contrast copy of the same crop gives (almost) the same input: the camera's gain is gone
    assert torch.allclose(per_crop[0], per_crop[1], atol=0.15)


def test_shipped_cnn_finds_and_scores_the_astronauts_smile():
    assert default_cnn_path().is_file()
    classifier = CnnClassifier.load()
    assert classifier.header["arch"] == "small_resnet" and default_cnn_path().stat().st_size < 5e6
    faces = EmotionPipeline(FaceAnalyzer(FaceDetector(upsample=1)), classifier).run(astronaut_gray())
    assert len(faces) == 1
    face = faces[0]
    assert set(face.scores) == set(classifier.labels)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.label == "happy"


def test_pipeline_scores_every_face_of_a_frame_in_one_batch():
    from face_images import two_faces

    classifier = CnnClassifier.load()
    pipeline = EmotionPipeline(FaceAnalyzer(FaceDetector(upsample=1)), classifier)
    frame = two_faces()
    faces = pipeline.run(frame)
    assert len(faces) == 2
    batch = classifier.predict_crops(classifier.crop.crops(frame, faces))
    for face, row in zip(faces, batch):
        assert face.confidence == pytest.approx(float(row.max()), abs=1e-5)
    assert pipeline.run(np.full((240, 320), 90, np.uint8)) == []
    analyzed = FaceAnalyzer().analyze(frame)
    kept = classify_faces(classifier, frame, analyzed)
    direct = classifier.predict_crops(classifier.crop.crops(frame, analyzed))
    assert [p.label for p in kept] == [classifier.labels[int(row.argmax())] for row in direct]
    assert all(np.array_equal(p.landmarks, f.landmarks) for p, f in zip(kept, analyzed))


def tiny_dataset(root: Path) -> Path:
    """Two 'subjects' x two classes of astronaut-derived 48x48 crops (freely licensed), a manifest with subjects."""
    rows = ["path,label,subject"]
    base = face_crop(48)
    for label in ("happy", "neutral"):
        (root / label).mkdir(parents=True)
        for subject in range(4):
            for k in range(3):
                image = np.clip(base.astype(int) + 10 * k - 15 * subject, 0, 255).astype(np.uint8)
                if label == "neutral":
                    image = cv2.GaussianBlur(image, (5, 5), 0)
                name = f"{label}/s{subject}_{k}.png"
                cv2.imwrite(str(root / name), image)
                rows.append(f"{name},{label},s{subject}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", *args], capture_output=True, text=True,
                          timeout=600)


def test_train_evaluate_and_predict_cnn_through_the_command_line(tmp_path: Path):
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "tiny.pt"
    train = cli("train", "cnn", "--data", str(data), "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                "--val-fraction", "0", "--quiet", "--out", str(out))
    assert train.returncode == 0, train.stderr
    classifier = CnnClassifier.load(out)
    assert classifier.labels == ["happy", "neutral"] and classifier.header["recipe"].startswith("emotion-perception")

    saved = cli("evaluate", "--data", str(data), "--model", str(out), "--json", str(tmp_path / "saved.json"),
                "--quiet")
    assert saved.returncode == 0, saved.stderr
    result = json.loads((tmp_path / "saved.json").read_text())
    assert result["protocol"] == "saved-model" and result["n"] == 24 and result["model_kind"] == "cnn"

    cv = cli("evaluate", "--model-kind", "cnn", "--arch", "small_resnet", "--data", str(data), "--protocol",
             "subject-kfold", "--folds", "2", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet",
             "--json", str(tmp_path / "cv.json"), "--plot", str(tmp_path / "cv.png"))
    assert cv.returncode == 0, cv.stderr
    result = json.loads((tmp_path / "cv.json").read_text())
    assert result["protocol"] == "subject-kfold" and result["n"] == 24 and len(result["fold_accuracy"]) == 2
    assert {"accuracy", "macro_f1", "per_class_recall", "confusion", "labels", "accuracy_3class"} <= set(result)
    assert cv2.imread(str(tmp_path / "cv.png")) is not None

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), astronaut_gray())
    for model in ("cnn", str(out)):
        predict = cli("predict", "--model", model, str(image))
        assert predict.returncode == 0, predict.stderr
        lines = [json.loads(line) for line in predict.stdout.splitlines()]
        assert len(lines) == 1 and {"box", "label", "confidence", "scores"} <= set(lines[0])
        assert lines[0]["label"] == max(lines[0]["scores"], key=lines[0]["scores"].get)
    assert set(lines[0]["scores"]) == {"happy", "neutral"}  # the tiny model's own classes


def test_cnn_command_line_errors_are_one_line(tmp_path: Path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not torch")
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), astronaut_gray())
    for args in (("predict", "--model", str(broken), str(image)),
                 ("evaluate", "--data", str(tmp_path), "--model", str(broken)),
                 ("evaluate", "--data", str(tmp_path), "--model-kind", "forest", "--model", str(broken))):
        result = cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr


def test_a_stopped_training_resumes_from_its_checkpoint_and_ends_where_an_unbroken_one_ends(tmp_path, monkeypatch):
    crops, labels = stripes(64, 3)
    settings = TrainSettings(arch="small_resnet", epochs=3, batch_size=32, val_fraction=0.25, device="cpu",
                             progress=False)
    unbroken = train_cnn(crops, labels, settings)
    epochs_run = []
    real_epoch = cnn_training.train_epoch

    def stops_in_epoch_two(*args, **kwargs):
        epochs_run.append(1)
        if len(epochs_run) == 2:
            raise KeyboardInterrupt  # the training is stopped while its second epoch runs
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(cnn_training, "train_epoch", stops_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_cnn(crops, labels, settings, checkpoints=tmp_path)
    monkeypatch.setattr(cnn_training, "train_epoch", real_epoch)
    resumed = train_cnn(crops, labels, settings, checkpoints=tmp_path)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history == unbroken.history
    for name, value in unbroken.classifier.model.state_dict().items():
        assert torch.equal(value, resumed.classifier.model.state_dict()[name]), name
