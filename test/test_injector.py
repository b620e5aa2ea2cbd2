"""The injector's frame logic without ROS: encodings, fraction draws, scaling on frames, set-up errors."""

import cv2
import numpy as np
import pytest
import skimage.data
from face_images import astronaut_bgr, astronaut_gray

from emotion_perception import attacks
from emotion_perception.attacks.injector import FrameAttacker, attack_params, frame_seed
from emotion_perception.core.errors import FrameError, InjectorSetupError
from emotion_perception.core.frames import encode_frame
from emotion_perception.core.params import defaults, validate
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.ros.params import INJECTOR_PARAMS


def settings(**changes) -> dict:
    values = defaults(INJECTOR_PARAMS)
    values.update(changes)
    assert validate(INJECTOR_PARAMS, values) == []
    return values


def fields(image: np.ndarray, encoding: str | None = None) -> tuple:
    found, height, width, step, data = encode_frame(image[:, :, :3] if image.ndim == 3 else image)
    if encoding in ("rgb8", "bgra8", "rgba8"):
        channels = image.shape[2]
        return encoding, height, width, width * channels, image.tobytes(), False
    return found, height, width, step, data, False


def test_defaults_validate_and_none_leaves_frames_alone():
    attacker = FrameAttacker(settings())
    result = attacker.attack_frame(*fields(astronaut_gray()), index=0)
    assert result.pixels is None and not result.applied and result.reason == "attack is none"
    assert attack_params(settings()) == {}


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8"])
def test_colour_encodings_keep_their_layout_and_alpha(encoding):
    image = astronaut_bgr()[:, :, ::-1].copy() if encoding == "rgb8" else np.dstack(
        [astronaut_bgr(), np.full((512, 512), 200, np.uint8)])
    result = FrameAttacker(settings(attack="salt_pepper", noise_amount=0.1)).attack_frame(
        *fields(image, encoding), index=0)
    assert result.applied and result.pixels.shape == image.shape
    if encoding == "bgra8":
        assert np.all(result.pixels[:, :, 3] == 200)
    assert result.linf == pytest.approx(attacks.change_size(image, result.pixels)["linf"])


def test_eye_boxes_on_rgb_frames_find_the_face():
    rgb = np.ascontiguousarray(astronaut_bgr()[:, :, ::-1])
    result = FrameAttacker(settings(attack="eye_boxes")).attack_frame(*fields(rgb, "rgb8"), index=0)
    assert result.applied and result.faces == 1
    assert 0.002 < np.mean(np.any(result.pixels != rgb, axis=2)) < 0.02  # two eye boxes, not the frame


def test_a_surgical_mask_covers_the_lower_face_only():
    frame = astronaut_bgr()
    result = FrameAttacker(settings(attack="mask")).attack_frame(*fields(frame), index=0)
    assert result.applied and result.faces == 1 and attack_params(settings(attack="mask"))["mask_fill"] == "folds"
    landmarks = FaceAnalyzer().analyze(astronaut_gray())[0].landmarks
    changed = np.flatnonzero(np.any(result.pixels != frame, axis=2).any(axis=1))
    assert changed.min() > landmarks[36:48, 1].max() and changed.max() <= landmarks[8, 1] + 2  # eyes free, to the chin
    assert 0.008 < np.mean(np.any(result.pixels != frame, axis=2)) < 0.05  # the lower face, not the frame


def test_fraction_draw_is_seeded_and_near_the_fraction():
    attacker = FrameAttacker(settings(attack="gaussian", fraction=0.3, seed=5))
    draws = [attacker.chosen(i) for i in range(2000)]
    assert draws == [FrameAttacker(settings(attack="gaussian", fraction=0.3, seed=5)).chosen(i) for i in range(2000)]
    assert 0.26 < np.mean(draws) < 0.34
    image = astronaut_gray()
    first = attacker.attack_frame(*fields(image), index=draws.index(True))
    again = attacker.attack_frame(*fields(image), index=draws.index(True))
    assert np.array_equal(first.pixels, again.pixels)
    assert frame_seed(5, 1) != frame_seed(5, 2) and frame_seed(5, 1) == frame_seed(5, 1)
    skipped = attacker.attack_frame(*fields(image), index=draws.index(False))
    assert not skipped.applied and skipped.reason == "frame not drawn (fraction)"


def test_scaling_on_a_frame_shows_the_target_after_the_victims_resize(tmp_path):
    target = tmp_path / "cat.png"
    cv2.imwrite(str(target), skimage.data.chelsea()[:, :, ::-1])
    values = settings(attack="scaling", target_image=str(target), scale_width=64, scale_height=48)
    frame = np.ascontiguousarray(astronaut_bgr()[:384])
    result = FrameAttacker(values).attack_frame(*fields(frame), index=0)
    seen = cv2.resize(result.pixels, (64, 48), interpolation=cv2.INTER_LINEAR)
    expected = cv2.resize(cv2.imread(str(target)), (64, 48), interpolation=cv2.INTER_AREA)
    assert attacks.image_quality(expected, seen)["psnr"] > 40
    assert attacks.image_quality(frame, result.pixels)["psnr"] > 20
    with pytest.raises(FrameError, match="smaller than the victim"):
        FrameAttacker(values).attack_frame(*fields(astronaut_gray()[:40, :40]), index=0)


def test_sixteen_bit_frames_pass_through_with_a_reason():
    deep = (astronaut_gray().astype(np.uint16) * 257).tobytes()
    result = FrameAttacker(settings(attack="gaussian")).attack_frame("mono16", 512, 512, 1024, deep, False, 0)
    assert result.pixels is None and not result.applied and "8-bit" in result.reason


def test_set_up_errors_name_the_cause(tmp_path):
    with pytest.raises(InjectorSetupError, match="target_image"):
        FrameAttacker(settings(attack="scaling"))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(InjectorSetupError, match=r"bad\.png"):
        FrameAttacker(settings(attack="scaling", target_image=str(tmp_path / "bad.png")))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(InjectorSetupError, match="needs a CNN"):
        FrameAttacker(settings(attack="pgd", model_path=str(tmp_path / "bad.pt")))
    assert validate(INJECTOR_PARAMS, {"attack": "blur", "epsilon": 1.5, "fraction": 1})
