"""The attack library on real images (the astronaut, frames made from it) and small torch models."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from face_images import astronaut_bgr, astronaut_gray, face_crop, two_faces
from torch import nn

from emotion_perception import attacks
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.models.cnn import load_cnn
from emotion_perception.models.crops import CropSpec, aligned_crop, crop_face


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut_points(analyzer) -> np.ndarray:
    faces = analyzer.analyze(astronaut_gray())
    assert faces, "the astronaut's face must be found"
    return faces[0].landmarks


def tiny_model(seed: int = 0, classes: int = 4, gain: float = 20.0) -> nn.Module:
    """A small CNN from (n, 1, s, s) [0, 1] pixels to logits, with fixed random weights; `gain` scales the
    logits so that the loss reacts to small perturbations as a trained network's does."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, classes),
    ).eval()
    with torch.no_grad():
        model[-1].weight.mul_(gain)
    return model


def outside(shape: tuple[int, ...], boxes: list[attacks.Box]) -> np.ndarray:
    mask = np.ones(shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = False
    return mask


def inside(box: attacks.Box, points: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    return bool(np.all((points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)))


@pytest.mark.parametrize("fill", attacks.FILLS)
def test_eye_boxes_cover_both_eyes_and_nothing_else(astronaut_points, fill):
    image = astronaut_bgr()
    boxes = attacks.eye_rectangles(astronaut_points, image.shape, margin=0.25)
    out = attacks.apply_eye_boxes(image, astronaut_points, margin=0.25, fill=fill, seed=3)
    assert inside(boxes[0], astronaut_points[36:42]) and inside(boxes[1], astronaut_points[42:48])
    assert boxes[0][2] <= boxes[1][0], "the two eye boxes are side by side"
    keep = outside(image.shape, boxes)
    assert np.array_equal(out[keep], image[keep])
    covered = np.concatenate([out[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in boxes])
    if fill == "black":
        assert np.all(covered == 0)
    elif fill == "white":
        assert np.all(covered == 255)
    elif fill == "mean":
        assert np.all(covered == np.round(image.reshape(-1, 3).mean(axis=0)))
    else:
        assert covered.std() > 50  # uniform noise, not a flat patch
        assert np.array_equal(out, attacks.apply_eye_boxes(image, astronaut_points, 0.25, "noise", seed=3))
    assert np.array_equal(image, astronaut_bgr()), "the input is not modified"


def test_eye_box_margin_grows_the_boxes(astronaut_points):
    small = attacks.eye_rectangles(astronaut_points, (512, 512), margin=0.0)
    large = attacks.eye_rectangles(astronaut_points, (512, 512), margin=0.5)
    for (a0, b0, a1, b1), (c0, d0, c1, d1) in zip(small, large):
        assert c0 < a0 and d0 < b0 and c1 > a1 and d1 > b1


def test_jaw_box_covers_the_lower_jaw_and_nothing_else(astronaut_points):
    image = astronaut_gray()
    box = attacks.jaw_rectangle(astronaut_points, image.shape)
    out = attacks.apply_jaw_box(image, astronaut_points, fill="white")
    assert inside(box, astronaut_points[4:13])
    assert not inside(box, astronaut_points[36:48]), "the eyes stay visible"
    keep = outside(image.shape, [box])
    assert np.array_equal(out[keep], image[keep]) and np.all(out[~keep] == 255)


def test_eye_boxes_hide_the_eyes_from_the_landmark_pipeline(analyzer, astronaut_points):
    """The Type A occlusion moves the predicted eye landmarks (dlib has to guess them)."""
    out = attacks.apply_eye_boxes(astronaut_gray(), astronaut_points, fill="black")
    faces = analyzer.analyze(out)
    moved = np.inf if not faces else np.abs(faces[0].landmarks[36:48] - astronaut_points[36:48]).max()
    assert moved > 1.0


def test_boxes_clip_to_the_image_and_reject_bad_landmarks(astronaut_points):
    shifted = astronaut_points - astronaut_points[36] + (1, 1)  # the left eye corner at the image corner
    x0, y0, x1, y1 = attacks.eye_rectangles(shifted, (64, 64))[0]
    assert x0 == 0 and y0 == 0 and x1 <= 64 and y1 <= 64
    with pytest.raises(ValueError, match="finite"):
        attacks.eye_rectangles(np.full((68, 2), np.nan), (64, 64))
    with pytest.raises(ValueError, match="fill"):
        attacks.fill_boxes(astronaut_gray(), [(0, 0, 4, 4)], fill="pink")


def test_poison_class_boxes_only_the_chosen_class(astronaut_points):
    image = astronaut_gray()
    missing = np.full((68, 2), np.nan, np.float32)
    images = [image, image, image]
    out, poisoned = attacks.poison_class(
        images, ["happy", "sadness", "happy"], np.stack([astronaut_points, astronaut_points, missing]), "happy"
    )
    assert poisoned.tolist() == [True, False, False]
    box = attacks.eye_rectangles(astronaut_points, image.shape)[0]
    assert np.all(out[0][box[1] : box[3], box[0] : box[2]] == 0)
    assert out[1] is image and out[2] is image
    with pytest.raises(ValueError, match="no image is labelled"):
        attacks.poison_class(images, ["happy"] * 3, np.stack([astronaut_points] * 3), "anger")


def test_noise_is_seeded_and_sized():
    image = astronaut_gray()
    a, b = attacks.gaussian_noise(image, 0.05, seed=1), attacks.gaussian_noise(image, 0.05, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, attacks.gaussian_noise(image, 0.05, seed=2))
    delta = (a.astype(float) - image) / 255
    assert 0.04 < delta[(image > 30) & (image < 225)].std() < 0.06
    s = attacks.salt_and_pepper(astronaut_bgr(), 0.1, seed=4)
    assert np.array_equal(s, attacks.salt_and_pepper(astronaut_bgr(), 0.1, seed=4))
    changed = np.any(s != astronaut_bgr(), axis=2)
    assert 0.08 < changed.mean() < 0.11
    assert set(np.unique(s[changed])) <= {0, 255}


def loss(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), labels))


@pytest.mark.parametrize("epsilon", [0.01, 0.03])
def test_fgsm_and_pgd_stay_within_epsilon_and_raise_the_loss(epsilon):
    model = tiny_model()
    x = torch.from_numpy(np.stack([face_crop(48), face_crop(48)[:, ::-1].copy()]).astype(np.float32) / 255)[:, None]
    labels = torch.tensor([1, 2])
    clean = loss(model, x, labels)
    fast = attacks.fgsm(model, x, epsilon, labels)
    strong = attacks.pgd(model, x, epsilon, steps=10, labels=labels, seed=0)
    for adv in (fast, strong):
        assert float((adv - x).abs().max()) <= epsilon + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert loss(model, fast, labels) > clean
    assert loss(model, strong, labels) > loss(model, fast, labels)
    assert torch.equal(strong, attacks.pgd(model, x, epsilon, steps=10, labels=labels, seed=0))
    assert not torch.equal(strong, attacks.pgd(model, x, epsilon, steps=10, labels=labels, seed=1))


def test_fgsm_without_labels_attacks_the_models_own_prediction():
    model = tiny_model(seed=2)
    x = torch.from_numpy(face_crop(48).astype(np.float32) / 255)[None, None]
    predicted = model(x).argmax(1)
    assert torch.equal(attacks.fgsm(model, x, 0.02), attacks.fgsm(model, x, 0.02, predicted))


def test_pixel_model_normalises_like_the_cnn_path():
    inner = tiny_model()
    wrapped = attacks.pixel_model(inner, {"mean": 0.5, "std": 0.25})
    x = torch.rand(1, 1, 48, 48)
    assert torch.allclose(wrapped(x), inner((x - 0.5) / 0.25))


def test_crop_map_reproduces_crop_face(analyzer):
    for image in (astronaut_gray(), face_crop(48), two_faces()):
        for face in analyzer.analyze(image):
            for size in (48, 64):
                crop_map = attacks.CropMap.for_box(image.shape, face.box, size)
                assert np.abs(crop_map.apply(image) - crop_face(image, face.box, size)).max() <= 1.0


def test_aligned_map_reproduces_the_aligned_crop(analyzer):
    for image in (astronaut_gray(), two_faces(), cv2.resize(astronaut_gray(), (1024, 1024))):
        for face in analyzer.analyze(image):
            aligned = attacks.AlignedMap.for_landmarks(image.shape, face.landmarks, 48)
            crop = aligned.crop(torch.from_numpy(image.astype(np.float32))).numpy()
            assert np.abs(crop - aligned_crop(image, face.landmarks, 48)).max() <= 2.0


@pytest.mark.parametrize(("attack", "kind"), [("fgsm", "box"), ("pgd", "box"), ("fgsm", "aligned")])
def test_attack_faces_perturbs_only_the_crops_and_raises_the_cnn_loss(analyzer, attack, kind):
    image = two_faces()
    faces = analyzer.analyze(image)
    assert len(faces) == 2
    spec = CropSpec(kind, 48)
    model = tiny_model(seed=1)
    labels = [0, 3]
    out = attacks.attack_faces(image, faces, model, spec, attack, epsilon=0.02, labels=labels, steps=5)
    change = out.astype(int) - image
    assert np.abs(change).max() <= np.floor(0.02 * 255)
    assert np.count_nonzero(change) > 1000
    mask = attacks.ImageToCrops(attacks.crop_maps(image.shape, faces, spec)).mask(image.shape)
    assert not np.any(change[mask.numpy() == 0])

    def crop_loss(frame: np.ndarray) -> float:
        crops = spec.crops(frame, faces).astype(np.float32) / 255
        return loss(model, torch.from_numpy(crops)[:, None], torch.tensor(labels))

    noise = np.random.default_rng(0).choice([-5, 5], image.shape) * mask.numpy()
    random = np.clip(image + noise, 0, 255).astype(np.uint8)  # random signs, same size, same pixels
    assert crop_loss(out) > crop_loss(image) + 0.1
    assert crop_loss(out) - crop_loss(image) > 10 * abs(crop_loss(random) - crop_loss(image))


def test_add_gray_change_moves_every_channel():
    colour = astronaut_bgr()
    gray = astronaut_gray()
    after = attacks.gaussian_noise(gray, 0.01, seed=0)
    out = attacks.add_gray_change(colour, gray, after)
    regrey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(int)
    inner = (colour.min(axis=2) > 5) & (colour.max(axis=2) < 250)
    assert np.abs(regrey - after)[inner].max() <= 1


def chelsea_target(size: int) -> np.ndarray:
    """A public-domain cat photo (skimage) as the image the victim should see."""
    return cv2.resize(cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2GRAY), (size, size),
                      interpolation=cv2.INTER_AREA)


# Measured on the 512x512 astronaut with the 48x48 cat as target (see the report): linear 60 dB / 26.4 dB,
# nearest inf / 30.4 dB, cubic 57.8 dB / 28.8 dB (target side / source side). Thresholds leave a margin.
@pytest.mark.parametrize(("interpolation", "source_psnr"), [("linear", 23.0), ("nearest", 27.0), ("cubic", 25.0)])
def test_scaling_attack_looks_like_the_source_and_scales_to_the_target(interpolation, source_psnr):
    source, target = astronaut_gray(), chelsea_target(48)
    out = attacks.scaling_attack(source, target, interpolation)
    quality = attacks.scaling_quality(out, source, target, interpolation)
    assert quality["target_psnr"] > 45 and quality["target_ssim"] > 0.99
    assert quality["source_psnr"] > source_psnr and quality["source_ssim"] > 0.7
    clean = attacks.image_quality(target, attacks.resize_like_victim(source, (48, 48), interpolation))
    assert clean["psnr"] < 12, "without the attack the victim sees the astronaut, not the cat"


def test_scaling_attack_on_colour_frames_and_area_resizes():
    source = astronaut_bgr()[:480, :]
    target = chelsea_target(64)[:48]
    out = attacks.scaling_attack(source, target, "linear")
    assert out.shape == source.shape
    assert attacks.scaling_quality(out, source, target, "linear")["target_psnr"] > 40
    # Area averaging reads every pixel: the attack still hits the target but can no longer hide (the known
    # defence); the source side collapses.
    area = attacks.scaling_attack(astronaut_gray(), chelsea_target(48), "area")
    quality = attacks.scaling_quality(area, astronaut_gray(), chelsea_target(48), "area")
    assert quality["target_psnr"] > 45 and quality["source_psnr"] < 15


def test_scaling_attack_rejects_upscaling_and_bad_interpolation():
    with pytest.raises(ValueError, match="downscale"):
        attacks.scaling_attack(face_crop(48), chelsea_target(64))
    with pytest.raises(ValueError, match="interpolation"):
        attacks.scaling_attack(astronaut_gray(), chelsea_target(48), "lanczos")


def test_resize_matrix_matches_cv2_resize():
    rng = np.random.default_rng(0)
    image = rng.random((100, 90)).astype(np.float32) * 255
    for name, flag in attacks.INTERPOLATIONS.items():
        left, right = attacks.resize_matrix(100, 48, name), attacks.resize_matrix(90, 40, name)
        expected = cv2.resize(image, (40, 48), interpolation=flag)
        assert np.abs(left @ image @ right.T - expected).max() < 1e-3


def test_change_size_and_quantize_within():
    image = astronaut_gray()
    attacked = image.astype(np.float64) + 3.7
    out = attacks.quantize_within(image, attacked, 0.01)
    size = attacks.change_size(image, out)
    assert size["linf"] <= 0.01 and size["linf"] == pytest.approx(2 / 255)
    assert size["l2"] > 0
    assert attacks.change_size(image, image) == {"linf": 0.0, "l2": 0.0}


def test_fgsm_and_pgd_on_the_shipped_cnn_raise_its_loss_and_flip_its_answer(analyzer):
    """On the trained small ResNet (not a random one): FGSM at the paper's epsilon raises the loss of the true
    label, and PGD at a few grey levels changes the answer, changing only crop pixels by at most epsilon."""
    model, header = load_cnn()
    pixels = attacks.pixel_model(model, header)
    image = astronaut_gray()
    face = analyzer.analyze(image)[0]
    spec, happy = CropSpec.from_header(header), header["labels"].index("happy")

    def crop_loss(frame: np.ndarray) -> tuple[float, int]:
        crop = torch.from_numpy(spec.crop(frame, face).astype(np.float32) / 255)[None, None]
        with torch.no_grad():
            logits = pixels(crop)
        return float(F.cross_entropy(logits, torch.tensor([happy]))), int(logits.argmax())

    clean_loss, clean_label = crop_loss(image)
    assert clean_label == happy  # the astronaut smiles, and the shipped CNN sees it
    for attack, epsilon in (("fgsm", 0.01), ("pgd", 0.03)):
        out = attacks.attack_faces(image, [face], pixels, spec, attack, epsilon=epsilon, labels=[happy], steps=10)
        assert np.abs(out.astype(int) - image).max() <= np.floor(epsilon * 255)
        attacked_loss, attacked_label = crop_loss(out)
        assert attacked_loss > clean_loss
    assert attacked_label != happy  # PGD at 7 grey levels fools it
