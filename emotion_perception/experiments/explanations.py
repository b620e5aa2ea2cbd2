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
The rules themselves (`Rule`, `RuleSet`) and their file format are in `models.rules`. No ROS imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from emotion_perception.models.rules import Condition, Rule, RuleSet

DEFAULT_DEPTH = 3
DEFAULT_FOLDS = 5
FIDELITY_METHOD = "{folds}-fold cross-validation ({grouping}): each face's surrogate decision comes from a tree " \
                  "fitted without that fold"



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
