"""Torch emotion CNNs on grey face crops: the paper's small ResNet, ResNet-18, the Röder & Erker DCNN and a
landmark-aware multi-task ResNet; safe weight files (tensors + JSON header, `torch.load(weights_only=True)`)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_perception.core.atomic import atomic_path
from emotion_perception.core.errors import CnnFileError
from emotion_perception.core.types import Face
from emotion_perception.models.crops import CropSpec

ARCHS = ("small_resnet", "resnet_wide", "resnet18", "dcnn", "multitask")
INPUT_SIZES = (48, 64, 112)
PER_CROP_EPSILON = 0.02  # added to a crop's standard deviation, so that flat crops stay finite
DEFAULT_CNN = "default_cnn.pt"
FORMAT = "emotion_perception.cnn/1"
N_LANDMARKS = 68
# Outer eye corners of the 68-point scheme: their distance is the inter-ocular normaliser (300-W convention).
LEFT_EYE_CORNER, RIGHT_EYE_CORNER = 36, 45



class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity shortcut (a 1x1 conv + BN projection where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of basic blocks: stem, stages with filters doubled (and resolution halved) per stage,
    global average pooling, dense layer (softmax is applied by the loss / by `predict_proba`)."""

    def __init__(self, n_classes: int, widths: tuple[int, ...], blocks: int, stem: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*layers)
        self.features_dim = channels
        self.fc = nn.Linear(channels, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


def small_resnet(n_classes: int) -> ResNet:
    """The paper's small ResNet: ResNet-20 v1 (3 stages of 3 identity blocks, 16/32/64 filters, ~0.27M
    parameters), as in the Keras CIFAR-10 example whose LR steps at epochs 80/120/160/180 the paper kept."""
    stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
    return ResNet(n_classes, (16, 32, 64), 3, stem)


def resnet_wide(n_classes: int) -> ResNet:
    """The small ResNet twice as wide with two blocks per stage (32/64/128 filters, ~0.7M parameters, ~240M
    multiply-adds at 48 px): the most a face may cost on one CPU core within the 5 ms budget."""
    stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
    return ResNet(n_classes, (32, 64, 128), 2, stem)


def resnet18(n_classes: int, input_size: int) -> ResNet:
    """ResNet-18 (4 stages of 2 blocks, 64..512 filters) on one grey channel.

    112 px inputs keep ImageNet's 7x7/2 conv + max-pool stem (112 -> 28); 48/64 px crops get a 3x3/1 conv +
    max-pool stem (48 -> 24) so that the last stage still sees 3x3 or more.
    """
    if input_size >= 96:
        stem = nn.Sequential(
            nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
    else:
        stem = nn.Sequential(
            nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
    return ResNet(n_classes, (64, 128, 256, 512), 2, stem)


class DCNN(nn.Module):
    """Röder & Erker's DCNN: 2x conv32 5x5 -> max-pool -> 2x conv64 3x3 -> max-pool (BN after each conv,
    dropout after each pool), then dense 64 -> dense 64 (dropout) -> n outputs."""

    def __init__(self, n_classes: int, input_size: int) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(1, 32, 5), *conv(32, 32, 5), nn.MaxPool2d(2), nn.Dropout(0.25),
            *conv(32, 64, 3), *conv(64, 64, 3), nn.MaxPool2d(2), nn.Dropout(0.25),
        )
        side = input_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 64), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(64, 64), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MultiTaskNet(nn.Module):
    """EmotionalDAN idea: the small ResNet with a second head regressing the 68 landmarks of the crop
    (coordinates in [0, 1] of the crop). `forward` returns the emotion logits only, like every other arch."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.backbone = small_resnet(n_classes)
        self.landmark_head = nn.Linear(self.backbone.features_dim, 2 * N_LANDMARKS)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(emotion logits (n, k), landmarks (n, 68, 2) in crop coordinates 0..1)."""
        embedding = self.backbone.embed(x)
        points = torch.sigmoid(self.landmark_head(embedding)).view(-1, N_LANDMARKS, 2)
        return self.backbone.fc(embedding), points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def build_model(arch: str, n_classes: int, input_size: int) -> nn.Module:
    """A freshly initialised network for `arch` and `input_size` (48, 64 or 112)."""
    if input_size not in INPUT_SIZES:
        raise ValueError(f"input size must be one of {INPUT_SIZES}, got {input_size}")
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {n_classes}")
    if arch == "small_resnet":
        return small_resnet(n_classes)
    if arch == "resnet_wide":
        return resnet_wide(n_classes)
    if arch == "resnet18":
        return resnet18(n_classes, input_size)
    if arch == "dcnn":
        return DCNN(n_classes, input_size)
    if arch == "multitask":
        return MultiTaskNet(n_classes)
    raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def interocular_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per face: mean point-to-point distance between (n, 68, 2) landmark sets over the target's
    inter-ocular (outer eye corner) distance."""
    per_point = torch.linalg.vector_norm(pred - target, dim=-1).mean(dim=-1)
    ocular = torch.linalg.vector_norm(target[:, LEFT_EYE_CORNER] - target[:, RIGHT_EYE_CORNER], dim=-1)
    return per_point / ocular.clamp_min(1e-6)


def multitask_loss(
    logits: torch.Tensor, labels: torch.Tensor, points: torch.Tensor, target_points: torch.Tensor,
    landmark_weight: float = 0.4,
) -> torch.Tensor:
    """landmark_weight * mean inter-ocular-normalised landmark error + (1 - landmark_weight) * cross-entropy."""
    return landmark_weight * interocular_error(points, target_points).mean() + (
        1 - landmark_weight
    ) * F.cross_entropy(logits, labels)


def default_cnn_path() -> Path:
    """The small ResNet weights shipped inside the package."""
    return Path(str(resources.files("emotion_perception") / "models" / DEFAULT_CNN))


def save_cnn(path: str | Path, model: nn.Module, header: dict[str, Any]) -> None:
    """Write the state_dict and a JSON header (arch, labels, input_size, mean, std, ...) as one `.pt` file of
    tensors only. The header must name arch, labels and input_size."""
    missing = {"arch", "labels", "input_size", "mean", "std"} - set(header)
    if missing:
        raise ValueError(f"CNN header lacks {sorted(missing)}")
    full = {**header, "format": FORMAT}
    payload = {
        "header": torch.frombuffer(bytearray(json.dumps(full, sort_keys=True).encode()), dtype=torch.uint8),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as partial:
        torch.save(payload, partial)


def load_cnn(path: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the CPU, header dict) from a file written by `save_cnn`; default: shipped weights.

    Raises CnnFileError for a missing, corrupt or mismatched file.
    """
    path = Path(path) if path else default_cnn_path()
    if not path.is_file():
        raise CnnFileError(f"CNN model {path}: no such file")
    try:
        payload = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        header = json.loads(bytes(payload["header"].numpy()).decode())
        state = payload["state_dict"]
    except Exception as error:  # torch/pickle/json raise many types for damaged files
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CnnFileError(f"CNN model {path}: not a readable emotion_perception CNN file ({cause})") from None
    found_format = header.get("format") if isinstance(header, dict) else None
    if found_format != FORMAT:
        raise CnnFileError(f"CNN model {path}: format {found_format!r}, expected {FORMAT!r}")
    try:
        model = build_model(header["arch"], len(header["labels"]), int(header["input_size"]))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0]
        raise CnnFileError(f"CNN model {path}: weights do not match the header ({first})") from None
    return model.eval(), header


def normalise(pixels: torch.Tensor, header: dict[str, Any]) -> torch.Tensor:
    """[0, 1] grey crops (n, 1, s, s) -> the network's input: each crop standardised on its own
    (`per_crop_standardisation`, camera-independent), or (x - mean) / std of the training set."""
    if header.get("per_crop_standardisation"):
        mean = pixels.mean(dim=(2, 3), keepdim=True)
        return (pixels - mean) / (pixels.std(dim=(2, 3), keepdim=True) + PER_CROP_EPSILON)
    return (pixels - float(header["mean"])) / float(header["std"])


def crops_to_tensor(crops: np.ndarray, header: dict[str, Any]) -> torch.Tensor:
    """(n, s, s) uint8 (or float 0..255) grey crops -> the network's input (n, 1, s, s) (see `normalise`)."""
    array = np.asarray(crops, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"expected (n, size, size) crops, got shape {array.shape}")
    return normalise(torch.from_numpy(array / 255.0).unsqueeze(1), header)


class CnnClassifier:
    """A loaded CNN with its header: normalised grey crops -> class probabilities, on a chosen device."""

    def __init__(self, model: nn.Module, header: dict[str, Any], device: str = "cpu") -> None:
        self.header = header
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> CnnClassifier:
        model, header = load_cnn(path)
        return cls(model, header, device)

    @property
    def labels(self) -> list[str]:
        return list(self.header["labels"])

    @property
    def input_size(self) -> int:
        return int(self.header["input_size"])

    @property
    def name(self) -> str:
        return str(self.header.get("name", self.header["arch"]))

    def to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        return crops_to_tensor(crops, self.header)

    @property
    def crop(self) -> CropSpec:
        """How the CNN's input is cut from an image (box or aligned, its size)."""
        return CropSpec.from_header(self.header)

    def predict_proba(self, gray: np.ndarray, faces: Sequence[Face],
                      covered: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """The `Classifier` protocol: probabilities of the faces of one grey image, from their crops (one network
        for every face: `covered` changes nothing)."""
        return self.predict_crops(self.crop.crops(gray, faces))

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(n, s, s) grey crops of `input_size` -> (n, k) probabilities; columns follow `labels`."""
        x = self.to_tensor(crops)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"crops must be {self.input_size}x{self.input_size}, got {tuple(x.shape[-2:])}")
        temperature = float(self.header.get("temperature", 1.0))
        out = [
            F.softmax(self.model(x[i : i + batch_size].to(self.device)).float() / temperature, dim=1).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.labels)), np.float32)


def resolve_device(device: str) -> tuple[str, str | None]:
    """'auto' | 'cpu' | 'cuda' -> (device used, a warning line when CUDA was asked for but is missing)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu", None
    if torch.cuda.is_available():
        return "cuda", None
    if device == "cuda":
        return "cpu", "CUDA was requested but is not available (no GPU or CPU-only torch): running on the CPU"
    return "cpu", None
