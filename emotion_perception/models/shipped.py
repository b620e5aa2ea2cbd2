"""How a model is named where a user picks one: "forest" (the shipped landmark forest), "cnn" (the shipped
small ResNet) or a model file (.npz forest, .pt CNN)."""

from __future__ import annotations

from emotion_perception.core.types import Classifier

SHIPPED = ("forest", "cnn")


def model_kind(spec: str) -> str:
    """"cnn" for the shipped CNN and .pt files, "forest" for anything else (a file that is no forest file then
    fails to load with ForestFileError)."""
    return "cnn" if spec == "cnn" or spec.endswith(".pt") else "forest"


def load_classifier(spec: str, device: str = "cpu") -> Classifier:
    """The model `spec` names, loaded (the CNN onto `device`)."""
    path = None if spec in SHIPPED else spec
    if model_kind(spec) == "cnn":
        from emotion_perception.models.cnn import CnnClassifier

        return CnnClassifier.load(path, device)
    from emotion_perception.models.landmark_model import EmotionModel

    return EmotionModel.load(path)


def detail_name(classifier: Classifier) -> str:
    """The model field of `emotion/detail`: "landmark_forest:NAME" or "cnn_ARCH:NAME"."""
    header = getattr(classifier, "header", {})
    if "arch" in header:
        return f"cnn_{header['arch']}:{classifier.name}"
    return f"landmark_forest:{classifier.name}"
