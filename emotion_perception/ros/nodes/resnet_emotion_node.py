"""resnet_emotion_node: camera frames in, the emotion of every face out, scored by a CNN on dlib face crops.

The classifier node of `ros.classifier_node` with a CNN (topics `emotion_resnet`, `emotion_resnet/detail`,
`emotion_resnet/debug_image` by default, remappable); all faces of a frame are scored in one batch. `device`
picks auto|cpu|cuda; without a usable GPU it runs on the CPU and says so in the log.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from emotion_perception.core.types import Classifier
from emotion_perception.models.cnn import CnnClassifier, resolve_device
from emotion_perception.ros.classifier_node import ClassifierNode
from emotion_perception.ros.params import RESNET_NODE_PARAMS
from emotion_perception.ros.plumbing import run_node


class ResnetEmotionNode(ClassifierNode):
    NAME = "resnet_emotion_node"
    TITLE = "resnet emotion"
    PARAMS = RESNET_NODE_PARAMS
    TOPIC = "emotion_resnet"
    SHIPPED = "default_cnn.pt"

    def load_model(self) -> Classifier:
        self._device, warning = resolve_device(self.params["device"])
        if warning:
            self.get_logger().warning(warning)
        if self.params["cpu_threads"]:
            torch.set_num_threads(self.params["cpu_threads"])
        return CnnClassifier.load(self.params["model_path"] or None, self._device)

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {"device": getattr(self, "_device", "cpu"), "arch": model.header["arch"] if model else "",
                "cpu_threads": torch.get_num_threads()}


def main(args: list[str] | None = None) -> int:
    return run_node(ResnetEmotionNode, ResnetEmotionNode.NAME, args)


if __name__ == "__main__":
    sys.exit(main())
