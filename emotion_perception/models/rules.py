"""Explanation rules at run time: a face's rule is the conjunction of surrogate-tree conditions on named
explanation features ("mouth width > 1.21 IOD and ... -> happy"), loaded from a safe JSON rules file (made by
`emotion-perception explain`, see `experiments.explanations`) and fired per face by the landmark node.

Rules round features to float32 and compare them with float64 thresholds, exactly as scikit-learn's trees do,
so evaluating the rules reproduces the tree's predictions bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.errors import RulesFileError
from emotion_perception.features.named import named_measurements

FORMAT = "emotion_perception.rules/1"
DEFAULT_RULES = "default_forest_rules.json"


def default_rules_path() -> Path:
    """The rules of the shipped default forest."""
    return Path(str(resources.files("emotion_perception") / "models" / DEFAULT_RULES))


def unit_of(feature: str) -> str:
    """Unit of a named measurement (see named_geometry): radians for angles/slopes, none for ratios and CNN
    units, otherwise inter-ocular distance (between the eye centres)."""
    if feature.startswith("unit_"):
        return ""
    if feature.endswith(("angle", "slope")):
        return "rad"
    if "ratio" in feature:
        return ""
    return "IOD"


@dataclass(frozen=True)
class Condition:
    """`feature op threshold` with op '<=' or '>' on column `index` of the explanation features."""

    feature: str
    index: int
    op: str
    threshold: float

    def holds(self, x: np.ndarray) -> np.ndarray:
        """(n,) bool for (n, d) feature rows: rounded to float32, then compared in float64 with the float64
        threshold, as scikit-learn's trees do (a float32 comparison would round the threshold)."""
        column = np.asarray(x, dtype=np.float32)[:, self.index].astype(np.float64)
        return column <= self.threshold if self.op == "<=" else column > self.threshold

    def text(self) -> str:
        unit = unit_of(self.feature)
        return f"{self.feature} {self.op} {self.threshold:.3g}{' ' + unit if unit else ''}"

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "index": self.index, "op": self.op, "threshold": self.threshold}


@dataclass(frozen=True)
class Rule:
    """IF all conditions THEN label. support: explanation faces the rule covers; precision: the fraction of
    them the model gave `label`."""

    label: str
    conditions: tuple[Condition, ...]
    support: int
    precision: float

    def matches(self, x: np.ndarray) -> np.ndarray:
        rows = np.asarray(x, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None]
        mask = np.ones(len(rows), bool)
        for condition in self.conditions:
            mask &= condition.holds(rows)
        return mask

    def text(self) -> str:
        body = " and ".join(c.text() for c in self.conditions) or "always"
        return f"{body} → {self.label}"

    def to_detail(self) -> dict[str, Any]:
        """The rule as a face's `rule` entry in emotion/detail."""
        return {"text": self.text(), "precision": round(self.precision, 4), "support": self.support,
                "conditions": [c.to_json() for c in self.conditions]}

    def to_json(self) -> dict[str, Any]:
        return {"class": self.label, "conditions": [c.to_json() for c in self.conditions],
                "support": self.support, "precision": round(self.precision, 4), "text": self.text()}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Rule:
        conditions = tuple(Condition(c["feature"], int(c["index"]), c["op"], float(c["threshold"]))
                           for c in item["conditions"])
        return cls(str(item["class"]), conditions, int(item["support"]), float(item["precision"]))


@dataclass
class RuleSet:
    """Rules of every class over named explanation features; `fired` finds the rule explaining one face."""

    features: list[str]
    rules: dict[str, list[Rule]]
    fidelity: dict[str, float]
    coverage: dict[str, float]
    info: dict[str, Any]

    def fired(self, values: np.ndarray, label: str | None = None) -> Rule | None:
        """The rule covering one face's explanation features (d,): of class `label` when given (normally the
        model's label for the face), otherwise the most precise covering rule of any class; None if none."""
        row = np.asarray(values, dtype=np.float32).reshape(1, -1)
        if row.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} explanation features, got {row.shape[1]}")
        candidates = self.rules.get(label, []) if label is not None else [r for rs in self.rules.values() for r in rs]
        best = None
        for rule in candidates:
            covers = all(_holds_one(c, row[0]) for c in rule.conditions)
            if covers and (best is None or rule.precision > best.precision):
                best = rule
        return best

    def mismatch(self, model_name: str) -> str | None:
        """Why these rules cannot explain the landmark forest named `model_name` face by face (None: they can)."""
        model, kind = self.info.get("model"), self.info.get("explanation_features")
        if model != model_name or kind != "named":
            return (f"the rules explain model {model!r} on {kind!r} features, not {model_name!r} on named "
                    "measurements (make them with `emotion-perception explain` and set rules_path)")
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "features": self.features,
            "fidelity": {k: round(v, 4) for k, v in self.fidelity.items()},
            "coverage": {k: round(v, 4) for k, v in self.coverage.items()},
            "rules": {k: [r.to_json() for r in rs] for k, rs in self.rules.items()},
            **self.info,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RuleSet:
        if payload.get("format") != FORMAT:
            raise RulesFileError(f"format {payload.get('format')!r}, expected {FORMAT!r}")
        known = {"format", "features", "fidelity", "coverage", "rules"}
        return cls(
            list(payload["features"]),
            {k: [Rule.from_json(r) for r in rs] for k, rs in payload["rules"].items()},
            {k: float(v) for k, v in payload["fidelity"].items()},
            {k: float(v) for k, v in payload["coverage"].items()},
            {k: v for k, v in payload.items() if k not in known},
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        path = Path(path) if path else default_rules_path()
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise RulesFileError(f"rules file {path}: no such file") from None
        except (RulesFileError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise RulesFileError(f"rules file {path}: not a readable rules file ({error})") from None


def _holds_one(condition: Condition, row: np.ndarray) -> bool:
    """`Condition.holds` for one float32 row, without array overhead."""
    value = float(row[condition.index])
    return bool(value <= condition.threshold) if condition.op == "<=" else bool(value > condition.threshold)


def named_rules_for_faces(
    ruleset: RuleSet | None, landmarks: Sequence[np.ndarray], labels: Sequence[str]
) -> list[Rule | None]:
    """The fired rule of each face's label, for rule sets over the named measurements (landmark forests);
    all None without a rule set."""
    if ruleset is None or not len(landmarks):
        return [None] * len(landmarks)
    values = named_measurements(np.stack([np.asarray(p, np.float64) for p in landmarks]))[1]
    return [ruleset.fired(row, label) for row, label in zip(values, labels)]
