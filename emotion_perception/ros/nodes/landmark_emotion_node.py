"""landmark_emotion_node: camera frames in, the emotion of every face out (dlib landmarks + RandomForest).

The classifier node of `ros.classifier_node` with the landmark forest; with `explain` it adds to each face the
surrogate rule of its label that fires (`models.rules`).
"""

from __future__ import annotations

import sys
from typing import Any

from emotion_perception.core.types import Classifier, FacePrediction
from emotion_perception.models.landmark_model import EmotionModel
from emotion_perception.models.rules import RuleSet, named_rules_for_faces
from emotion_perception.ros.classifier_node import ClassifierNode
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS
from emotion_perception.ros.plumbing import run_node


class LandmarkEmotionNode(ClassifierNode):
    NAME = "landmark_emotion_node"
    TITLE = "landmark emotion"
    PARAMS = LANDMARK_NODE_PARAMS
    TOPIC = "emotion"
    SHIPPED = "default_forest.npz"

    def load_model(self) -> Classifier:
        model = EmotionModel.load(self.params["model_path"] or None)
        self._rules: RuleSet | None = RuleSet.load(self.params["rules_path"] or None)
        mismatch = self._rules.mismatch(model.name)
        if mismatch:
            self.get_logger().warning(f"{mismatch}: explain gives no rules")
            self._rules = None
        return model

    def annotate(self, entries: list[dict[str, Any]], predictions: list[FacePrediction]) -> None:
        if self.params["explain"]:
            rules = named_rules_for_faces(self._rules, [f.landmarks for f in predictions],
                                          [f.label for f in predictions])
            for entry, rule in zip(entries, rules):
                entry["rule"] = None if rule is None else rule.to_detail()

    def describe(self) -> dict[str, Any]:
        return {"landmark_model_file": str(self._tracker.predictor.path) if self._tracker else ""}


def main(args: list[str] | None = None) -> int:
    return run_node(LandmarkEmotionNode, LandmarkEmotionNode.NAME, args)


if __name__ == "__main__":
    sys.exit(main())
