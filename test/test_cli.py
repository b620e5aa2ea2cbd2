"""The `emotion-perception` CLI end to end: real images, real dlib, the shipped model, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_images import astronaut_bgr, astronaut_gray, shared_dataset, two_faces
from png_checks import check_png, figure_pixels

REQUIRED_EVALUATE_KEYS = {"accuracy", "macro_f1", "per_class_recall", "confusion", "labels", "n", "protocol",
                          "accuracy_3class"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    paths = {
        "astronaut": root / "astronaut.png", "two": root / "two.png", "blank": root / "blank.png",
        "text": root / "notes.jpg", "deep": root / "deep.tif",
    }
    cv2.imwrite(str(paths["astronaut"]), astronaut_bgr())
    cv2.imwrite(str(paths["two"]), two_faces())
    cv2.imwrite(str(paths["blank"]), np.full((240, 320), 200, np.uint8))
    cv2.imwrite(str(paths["deep"]), astronaut_gray().astype(np.uint16) * 257)
    paths["text"].write_text("hello")
    return paths


def test_predict_prints_one_json_line_per_face_with_the_shipped_model(images):
    result = cli("predict", str(images["astronaut"]), str(images["two"]), str(images["deep"]))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines].count(str(images["two"])) == 2
    for line in lines:
        assert {"box", "label", "confidence", "scores"} <= set(line)
        assert line["label"] == max(line["scores"], key=line["scores"].get)
        assert abs(sum(line["scores"].values()) - 1) < 0.01
    assert lines[0]["label"] == "happy"  # the astronaut smiles


def test_predict_reports_no_face_and_bad_files(images):
    blank = cli("predict", str(images["blank"]))
    assert blank.returncode == 1 and blank.stdout == ""
    assert "no face found" in error_line(blank)
    mixed = cli("predict", str(images["blank"]), str(images["astronaut"]))  # the face is still printed
    assert mixed.returncode == 1 and len(mixed.stdout.splitlines()) == 1 and "no face found" in mixed.stderr
    bad = cli("predict", str(images["text"]))
    assert bad.returncode == 1
    assert "notes.jpg" in error_line(bad)


def test_missing_or_corrupt_model_is_one_line_and_non_zero(images, tmp_path):
    corrupt = tmp_path / "model.npz"
    corrupt.write_bytes(b"PK\x03\x04 broken")
    for model in (str(corrupt), str(tmp_path / "absent.npz")):
        result = cli("predict", "--model", model, str(images["astronaut"]))
        assert result.returncode == 2
        assert model in error_line(result)
    result = cli("predict", "--landmark-model", str(tmp_path / "absent.dat"), str(images["astronaut"]))
    assert result.returncode == 2 and "absent.dat" in error_line(result)


def make_face_folder(root: Path) -> Path:
    """Freely licensed training folder: shifted/scaled astronaut frames under two labels."""
    face = astronaut_gray()
    for label, scales in (("happy", (1.0, 0.9, 0.8)), ("surprise", (0.95, 0.85, 0.75))):
        (root / label).mkdir(parents=True)
        for scale in scales:
            frame = cv2.resize(face, None, fx=scale, fy=scale * (1.1 if label == "surprise" else 1.0))
            cv2.imwrite(str(root / label / f"s{scale}.png"), frame)
    return root


def test_train_then_predict_and_evaluate_a_saved_model(tmp_path):
    data = make_face_folder(tmp_path / "faces")
    model = tmp_path / "out" / "m.npz"
    trained = cli("train", "--data", str(data), "--out", str(model), "--no-cache", "--quiet", "--n-estimators", "10")
    assert trained.returncode == 0, trained.stderr
    predicted = cli("predict", "--model", str(model), str(data / "happy" / "s1.0.png"))
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in {"happy", "surprise"}
    report = tmp_path / "eval.json"
    evaluated = cli("evaluate", "--data", str(data), "--model", str(model), "--json", str(report), "--no-cache",
                    "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(report.read_text())
    assert set(result) >= REQUIRED_EVALUATE_KEYS and result["n"] == 6
    assert result["accuracy"] == 1.0  # the model has seen these very images


def test_bad_arguments_are_one_line_errors(tmp_path):
    result = cli("evaluate", "--data", str(tmp_path), "--protocol", "cross")
    assert result.returncode == 2 and "--test-data" in error_line(result)
    result = cli("train", "forest", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "m.npz"))
    assert result.returncode == 2 and "not a directory" in error_line(result)
    assert not (tmp_path / "m.npz").exists()
    result = cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pkl"))
    assert result.returncode == 2 and ".npz" in error_line(result)


def test_extract_writes_a_csv_of_landmarks(tmp_path):
    data = make_face_folder(tmp_path / "faces")
    out = tmp_path / "lm.csv"
    result = cli("extract", "--data", str(data), "--out", str(out), "--no-cache", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = out.read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("path,label,subject,found,whole_image,x0,y0")


def test_evaluate_on_shared_yale_writes_json_and_plot(tmp_path):
    yale = shared_dataset("yale_faces_expr")
    report, plot = tmp_path / "yale.json", tmp_path / "yale.png"
    result = cli("evaluate", "--data", str(yale), "--protocol", "subject-kfold", "--folds", "5", "--json",
                 str(report), "--plot", str(plot), "--quiet", "--cache", str(tmp_path / "c.sqlite"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(report.read_text())
    assert set(metrics) >= REQUIRED_EVALUATE_KEYS
    assert metrics["n"] == 60 and metrics["protocol"] == "subject-kfold"
    assert sum(map(sum, metrics["confusion"])) == 60
    n = len(metrics["labels"])  # the confusion matrix picture: the figure's size, not blank
    check_png(plot, size=figure_pixels(1.0 + 0.8 * n, 0.8 + 0.7 * n, 120))


def test_evaluate_leave_dataset_out_gives_each_held_out_dataset_and_their_mean(tmp_path):
    jaffe, yale = shared_dataset("jaffe"), shared_dataset("yale_faces_expr")
    out = tmp_path / "lodo.json"
    result = cli("evaluate", "--data", str(jaffe), "--data", str(yale), "--protocol", "leave-dataset-out",
                 "--n-estimators", "10", "--json", str(out), "--cache", str(tmp_path / "lm.sqlite"), "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["per_dataset"]) == {"jaffe", "yale_faces_expr"}
    held = report["per_dataset"]
    assert held["jaffe"]["n"] == 213 and held["yale_faces_expr"]["n"] == 60
    assert held["yale_faces_expr"]["n_train"] == 213 and held["jaffe"]["n_train"] == 60
    # Yale has 4 of JAFFE's 7 classes: the JAFFE-held-out model never saw anger, disgust or fear
    assert held["jaffe"]["unknown_classes"] == ["anger", "disgust", "fear"]
    mean = (held["jaffe"]["accuracy"] + held["yale_faces_expr"]["accuracy"]) / 2
    assert report["accuracy_mean"] == pytest.approx(mean)
    assert "held out jaffe" in result.stdout
