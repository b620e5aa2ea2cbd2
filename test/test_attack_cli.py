"""`emotion-perception attack` on a folder of astronaut-derived images: outputs, examples.png, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_images import astronaut_bgr, astronaut_gray, face_crop

from emotion_perception.cli import main
from emotion_perception.core.images import read_gray
from emotion_perception.models.cnn import build_model, save_cnn

IMAGES = ("happy/astronaut.png", "happy/crop.png", "sadness/mirrored.png", "sadness/tilted.bmp")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two classes of astronaut images: full colour photo, 48 px crop, mirrored grey, slightly rotated."""
    root = tmp_path_factory.mktemp("data")
    for folder in ("happy", "sadness"):
        (root / folder).mkdir()
    cv2.imwrite(str(root / IMAGES[0]), astronaut_bgr())
    cv2.imwrite(str(root / IMAGES[1]), face_crop(48))
    cv2.imwrite(str(root / IMAGES[2]), np.ascontiguousarray(astronaut_gray()[:, ::-1]))
    rotation = cv2.getRotationMatrix2D((256, 256), 8, 1.0)
    cv2.imwrite(str(root / IMAGES[3]), cv2.warpAffine(astronaut_gray(), rotation, (512, 512)))
    return root


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory) -> Path:
    """A real (untrained) small ResNet weight file in the package's safe format."""
    path = tmp_path_factory.mktemp("cnn") / "tiny.pt"
    save_cnn(path, build_model("small_resnet", 2, 48),
             {"arch": "small_resnet", "labels": ["happy", "sadness"], "input_size": 48, "mean": 0.5, "std": 0.25})
    return path


def attack(tmp_path: Path, data: Path, name: str, *extra: str) -> tuple[Path, dict]:
    out = tmp_path / name
    code = main(["attack", "--attack", name, "--data", str(data), "--out", str(out), "--quiet",
                 "--cache", str(tmp_path / "cache.sqlite"), *extra])
    assert code == 0
    return out, json.loads((out / "attack.json").read_text())


def check_outputs(out: Path, data: Path) -> None:
    for relative in IMAGES:
        written = read_gray(out / relative)
        assert written.shape == read_gray(data / relative).shape
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out) == \
        sorted(IMAGES)
    grid = cv2.imread(str(out / "examples.png"))
    assert grid is not None and grid.shape[0] > 160 and grid.shape[1] >= 3 * 160


@pytest.mark.parametrize("name", ["eye_boxes", "jaw_box", "mask", "gaussian", "salt_pepper"])
def test_attack_writes_one_image_per_input_and_examples(tmp_path, data, name):
    out, report = attack(tmp_path, data, name)
    check_outputs(out, data)
    assert report["attack"] == name and report["images"] == 4
    assert report["applied"] >= 3  # the 48 px crop may lack a face for the boxes; noise always applies
    for record in report["per_image"]:
        original, written = read_gray(data / record["path"]), read_gray(out / record["path"])
        assert record["applied"] == (not np.array_equal(original, written))
        if record["applied"]:
            assert record["linf"] == pytest.approx(np.abs(written / 255 - original / 255).max())


def test_gaussian_noise_is_reproducible_with_the_seed(tmp_path, data):
    first, _ = attack(tmp_path / "a", data, "gaussian", "--seed", "7", "--epsilon", "0.1")
    second, _ = attack(tmp_path / "b", data, "gaussian", "--seed", "7", "--epsilon", "0.1")
    third, _ = attack(tmp_path / "c", data, "gaussian", "--seed", "8", "--epsilon", "0.1")
    same = [np.array_equal(read_gray(first / r), read_gray(second / r)) for r in IMAGES]
    other = [np.array_equal(read_gray(first / r), read_gray(third / r)) for r in IMAGES]
    assert all(same) and not any(other)


def test_only_class_poisons_one_class_and_copies_the_rest(tmp_path, data):
    out, report = attack(tmp_path, data, "eye_boxes", "--only-class", "sadness")
    for relative in IMAGES:
        unchanged = (out / relative).read_bytes() == (data / relative).read_bytes()
        assert unchanged == relative.startswith("happy/")
    assert report["applied"] == 2 and report["only_class"] == "sadness"


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_white_box_attacks_stay_within_epsilon(tmp_path, data, cnn_file, name):
    out, report = attack(tmp_path, data, name, "--model", str(cnn_file), "--epsilon", "0.02", "--steps", "3")
    check_outputs(out, data)
    assert report["applied"] == 4 and report["params"]["epsilon"] == 0.02
    for relative in IMAGES:
        change = np.abs(read_gray(out / relative).astype(int) - read_gray(data / relative))
        assert 0 < change.max() <= 5  # floor(0.02 * 255) grey levels
        assert np.count_nonzero(change) < change.size  # only the face crop changes on the big images
    assert all(record["true_label_used"] for record in report["per_image"])


def test_scaling_attack_hides_another_class_image(tmp_path, data):
    out, report = attack(tmp_path, data, "scaling")
    check_outputs(out, data)
    assert report["applied"] == 4
    for record in report["per_image"]:
        assert record["target"].split("/")[0] != record["label"]
        assert record["target_psnr"] > 40 and record["target_ssim"] > 0.98
    big = [r for r in report["per_image"] if r["scale_size"] == 48]
    assert len(big) == 3 and all(r["source_psnr"] > 20 for r in big)


def test_scaling_with_a_given_target(tmp_path, data):
    target = tmp_path / "target.png"
    cv2.imwrite(str(target), np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1)))
    out, report = attack(tmp_path, data, "scaling", "--target", str(target), "--scale-size", "32",
                         "--interpolation", "nearest")
    seen = cv2.resize(read_gray(out / IMAGES[0]), (32, 32), interpolation=cv2.INTER_NEAREST)
    expected = cv2.resize(read_gray(target), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(seen.astype(int) - expected).max() <= 1
    assert report["params"]["scale_size"] == 32


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", *args], capture_output=True, text=True,
                          timeout=300)


def test_bad_attack_missing_data_and_missing_model_fail_with_one_line(tmp_path, data):
    cases = [
        (["--attack", "blur", "--data", str(data)], "unknown attack 'blur'"),
        (["--attack", "gaussian", "--data", str(tmp_path / "absent")], "not a directory"),
        (["--attack", "fgsm", "--data", str(data), "--model", str(tmp_path / "absent.pt")], "absent.pt"),
        (["--attack", "gaussian", "--data", str(data), "--epsilon", "2"], "--epsilon"),
        (["--attack", "jaw_box", "--data", str(data), "--epsilon", "0.1"], "does not apply"),
        (["--attack", "gaussian", "--data", str(data), "--out", str(data / "happy")], "outside --data"),
    ]
    for args, expected in cases:
        if "--out" not in args:
            args = [*args, "--out", str(tmp_path / "out")]
        result = cli("attack", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
