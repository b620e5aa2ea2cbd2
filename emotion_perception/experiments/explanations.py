"""Rules that say why a model gave a face its label: shallow one-vs-rest surrogate trees fitted to the model's
own predictions (not to the ground truth), as in seed 003's explanation of a ResNet.

For each class c a `DecisionTreeClassifier(max_depth=depth)` learns "model says c" vs "model says something
else" from an explanation feature set: the 97 named measurements for the landmark forest (inter-ocular units,
radians for angles and slopes), the penultimate-layer activations (`unit_k`) for a CNN. Each leaf of the tree
that predicts c becomes a rule: the conjunction of the split conditions on its path.

- fidelity: agreement of the surrogate's one-vs-rest decision with the model's, on held-out faces
  (k-fold cross-validation, folds grouped by subject where the data names subjects);
- coverage: fraction of the model's class-c predictions that a class-c rule covers.

Rules round features to float32 and compare them with float64 thresholds, exactly as scikit-learn's trees do,
so evaluating the rules reproduces the tree's predictions bit for bit. No ROS imports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from emotion_perception.core.errors import RulesFileError

FORMAT = "emotion_perception.rules/1"
DEFAULT_RULES = "default_forest_rules.json"
DEFAULT_DEPTH = 3
DEFAULT_FOLDS = 5
FIDELITY_METHOD = "{folds}-fold cross-validation ({grouping}): each face's surrogate decision comes from a tree " \
                  "fitted without that fold"



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


def tree_rules(tree: DecisionTreeClassifier, names: Sequence[str], label: str) -> list[Rule]:
    """One rule per leaf of a fitted one-vs-rest tree (classes False/True) that predicts True, with support and
    precision left at 0 (see `score_rules`)."""
    t = tree.tree_
    positive = list(tree.classes_).index(True) if True in tree.classes_ else None
    rules: list[Rule] = []

    def walk(node: int, path: tuple[Condition, ...]) -> None:
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            if positive is not None and int(np.argmax(t.value[node][0])) == positive:
                rules.append(Rule(label, path, 0, 0.0))
            return
        feature, threshold = int(t.feature[node]), float(t.threshold[node])
        walk(left, (*path, Condition(names[feature], feature, "<=", threshold)))
        walk(right, (*path, Condition(names[feature], feature, ">", threshold)))

    walk(0, ())
    return rules


def score_rules(rules: list[Rule], x: np.ndarray, target: np.ndarray) -> list[Rule]:
    """The rules with support and precision measured on feature rows `x` and one-vs-rest targets."""
    scored = []
    for rule in rules:
        mask = rule.matches(x)
        precision = float(target[mask].mean()) if mask.any() else 0.0
        scored.append(Rule(rule.label, rule.conditions, int(mask.sum()), precision))
    return sorted(scored, key=lambda r: (-r.support, -r.precision))


def rules_predict(rules: Sequence[Rule], x: np.ndarray) -> np.ndarray:
    """(n,) bool: some rule covers the row."""
    mask = np.zeros(len(np.atleast_2d(x)), bool)
    for rule in rules:
        mask |= rule.matches(x)
    return mask


def fidelity(surrogate: np.ndarray, model: np.ndarray) -> float:
    """Fraction of faces on which the surrogate's one-vs-rest decision equals the model's."""
    return float(np.mean(np.asarray(surrogate, bool) == np.asarray(model, bool)))


def _folds(target: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> tuple[list, str]:
    """(train, test) index pairs: grouped by subject when there are enough subjects, else stratified (or
    plainly shuffled when the class has too few faces to stratify)."""
    n, zeros = len(target), np.zeros(len(target))
    if groups is not None and len(np.unique(groups)) >= folds:
        return list(GroupKFold(n_splits=folds).split(zeros, target, groups)), "grouped by subject"
    if min(int(target.sum()), n - int(target.sum())) >= folds:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(zeros, target)), "stratified"
    return list(KFold(folds, shuffle=True, random_state=seed).split(zeros)), "shuffled"


def _tree(depth: int, seed: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=depth, random_state=seed)


def cross_validated_decisions(x: np.ndarray, target: np.ndarray, depth: int, folds: list, seed: int) -> np.ndarray:
    """Each face's surrogate decision from a tree fitted on the other folds."""
    out = np.zeros(len(target), bool)
    for train, test in folds:
        if len(np.unique(target[train])) < 2:
            out[test] = bool(target[train][0]) if len(train) else False
            continue
        out[test] = _tree(depth, seed).fit(x[train], target[train]).predict(x[test])
    return out


@dataclass
class ClassExplanation:
    """The surrogate tree of one class, its rules and how faithful they are."""

    label: str
    tree: DecisionTreeClassifier
    rules: list[Rule]
    fidelity: float  # held out (cross-validated)
    fidelity_train: float  # the final tree on the faces it was fitted to
    coverage: float  # of the model's class predictions, by the final rules
    coverage_cv: float  # of the model's class predictions, by the held-out surrogate decisions
    n_predicted: int  # faces the model gave this class
    n_faces: int

    @property
    def baseline(self) -> float:
        """Fidelity of a surrogate that always says "rest" (or always the class, if the model mostly says it)."""
        share = self.n_predicted / self.n_faces if self.n_faces else 0.0
        return max(share, 1 - share)


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


def explain(
    x: np.ndarray,
    predicted: np.ndarray,
    names: Sequence[str],
    classes: Sequence[str],
    groups: np.ndarray | None = None,
    depth: int = DEFAULT_DEPTH,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> tuple[RuleSet, list[ClassExplanation]]:
    """Surrogate trees and rules for every class from explanation features `x` (n, d) and the model's own
    predicted labels (n,). `groups` (subjects) keep a person's faces in one fold."""
    x = np.asarray(x, dtype=np.float64)
    predicted = np.asarray(predicted).astype(str)
    if x.ndim != 2 or len(x) != len(predicted) or x.shape[1] != len(names):
        raise ValueError(f"features {x.shape}, {len(predicted)} predictions and {len(names)} names do not match")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if len(x) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} faces for {folds}-fold fidelity, got {len(x)}")
    explanations = []
    methods = set()
    for label in classes:
        target = predicted == label
        split, grouping = _folds(target, groups, folds, seed)
        methods.add(grouping)
        held_out = cross_validated_decisions(x, target, depth, split, seed)
        tree = _tree(depth, seed).fit(x, target)
        rules = score_rules(tree_rules(tree, names, label), x, target)
        covered = rules_predict(rules, x)
        n_pred = int(target.sum())
        explanations.append(ClassExplanation(
            label, tree, rules, fidelity(held_out, target), fidelity(tree.predict(x), target),
            float(covered[target].mean()) if n_pred else 0.0,
            float(held_out[target].mean()) if n_pred else 0.0, n_pred, len(x),
        ))
    info = {
        "depth": depth, "folds": folds, "n_faces": len(x),
        "fidelity_method": FIDELITY_METHOD.format(folds=folds, grouping=", ".join(sorted(methods))),
        "coverage_method": "fraction of the faces the model gave the class that one of the class's rules covers "
                           "(rules of the tree fitted on all faces)",
        "fidelity_train": {e.label: round(e.fidelity_train, 4) for e in explanations},
        "coverage_cv": {e.label: round(e.coverage_cv, 4) for e in explanations},
        "n_predicted": {e.label: e.n_predicted for e in explanations},
        "fidelity_baseline": {e.label: round(e.baseline, 4) for e in explanations},
    }
    ruleset = RuleSet(
        list(names), {e.label: e.rules for e in explanations},
        {e.label: e.fidelity for e in explanations}, {e.label: e.coverage for e in explanations}, info,
    )
    return ruleset, explanations


def named_rules_for_faces(
    ruleset: RuleSet | None, landmarks: Sequence[np.ndarray], labels: Sequence[str]
) -> list[Rule | None]:
    """The fired rule of each face's label, for rule sets over the named measurements (landmark forests);
    all None without a rule set."""
    if ruleset is None or not len(landmarks):
        return [None] * len(landmarks)
    from emotion_perception.features.named import named_measurements

    values = named_measurements(np.stack([np.asarray(p, np.float64) for p in landmarks]))[1]
    return [ruleset.fired(row, label) for row, label in zip(values, labels)]


def cnn_penultimate(classifier: Any, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, d) activations of a CNN's penultimate layer (the input of its last dense layer) for grey crops."""
    import torch

    from emotion_perception.models.cnn import DCNN, MultiTaskNet, ResNet

    model = classifier.model
    x = classifier.to_tensor(crops)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(classifier.device)
            if isinstance(model, ResNet):
                out.append(model.embed(batch))
            elif isinstance(model, MultiTaskNet):
                out.append(model.backbone.embed(batch))
            elif isinstance(model, DCNN):
                out.append(model.classifier[:-1](model.features(batch)))
            else:
                raise ValueError(f"no penultimate layer known for {type(model).__name__}")
    return torch.cat(out).float().cpu().numpy() if out else np.zeros((0, 0), np.float32)
