"""Attacks as pure functions of (image, landmarks or model, parameters), one registry of them by name
(`registry`: the injector, the trials and the `attack` command apply attacks through it), and the adversarial
injector's frame logic (`injector`). Imports the core, features, models and data.

Images are uint8, grey (h, w) or colour (h, w, c); results are new arrays (inputs are never modified).
"""

from emotion_perception.attacks.gradient import (
    AlignedMap,
    CropMap,
    ImageToCrops,
    PixelModel,
    add_gray_change,
    attack_faces,
    crop_maps,
    fgsm,
    pgd,
    pixel_model,
    quantize_within,
)
from emotion_perception.attacks.noise import gaussian_noise, salt_and_pepper
from emotion_perception.attacks.occlusion import (
    EYE_MARGIN,
    FILLS,
    JAW_MARGIN,
    Box,
    apply_eye_boxes,
    apply_jaw_box,
    eye_rectangles,
    fill_boxes,
    jaw_rectangle,
    landmark_box,
    poison_class,
)
from emotion_perception.attacks.pixels import change_size
from emotion_perception.attacks.registry import ATTACK_PARAMS, NAMES, AttackInputs, apply
from emotion_perception.attacks.scaling import (
    INTERPOLATIONS,
    image_quality,
    resize_like_victim,
    resize_matrix,
    scaling_attack,
    scaling_camouflage,
    scaling_quality,
)

__all__ = [
    "ATTACK_PARAMS", "EYE_MARGIN", "FILLS", "INTERPOLATIONS", "JAW_MARGIN", "NAMES",
    "AlignedMap", "AttackInputs", "Box", "CropMap", "ImageToCrops", "PixelModel",
    "add_gray_change", "apply", "apply_eye_boxes", "apply_jaw_box", "attack_faces", "change_size", "crop_maps",
    "eye_rectangles",
    "fgsm", "fill_boxes", "gaussian_noise", "image_quality", "jaw_rectangle", "landmark_box", "pgd", "pixel_model",
    "poison_class", "quantize_within", "resize_like_victim", "resize_matrix", "salt_and_pepper", "scaling_attack",
    "scaling_camouflage",
    "scaling_quality",
]
