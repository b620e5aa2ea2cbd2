"""`emotion-perception explain`: rules (shallow one-vs-rest surrogate trees) that say why a model labels faces,
with per-class fidelity and coverage: OUT/rules.md, OUT/rules.json and OUT/tree_<class>.png."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emotion_perception import features
from emotion_perception.cli.common import (
    add_analyzer_args,
    add_data_args,
    make_analyzer,
    make_cache,
    output_folder,
    write_json,
)
from emotion_perception.core.atomic import save_figure, write_text_atomic
from emotion_perception.core.errors import CommandError
from emotion_perception.data.datasets import FaceDataset, load_datasets
from emotion_perception.data.face_data import with_landmarks
from emotion_perception.experiments.crossval import ForestRecipe, predict
from emotion_perception.experiments.explanations import DEFAULT_DEPTH, DEFAULT_FOLDS, ClassExplanation, explain
from emotion_perception.models.landmark_model import ForestSettings
from emotion_perception.models.rules import RuleSet, unit_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="rules explaining a model's labels, with measured fidelity")
    parser.add_argument("--model", required=True, metavar="forest|cnn|PATH.npz|PATH.pt",
                        help="forest / cnn: the shipped models; or a saved forest (.npz) or CNN (.pt)")
    add_data_args(parser)
    parser.add_argument("--out", required=True, type=output_folder, help="output folder")
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="depth of each surrogate tree (1-8)")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="folds for the held-out fidelity")
    parser.add_argument("--seed", type=int, default=0)
    add_analyzer_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.depth <= 8:
        raise CommandError(f"--depth must be 1..8, got {args.depth}")
    if not 2 <= args.folds <= 20:
        raise CommandError(f"--folds must be 2..20, got {args.folds}")
    kind = model_kind(args.model)
    dataset = load_datasets(args.data)
    if kind == "forest":
        x, names, predicted, found, model_info = forest_inputs(args, dataset)
    else:
        x, names, predicted, found, model_info = cnn_inputs(args, dataset)
    if found.sum() < 2 * args.folds:
        raise CommandError(f"faces found in {int(found.sum())} images: too few for {args.folds}-fold fidelity")
    classes = model_info["labels"]
    ruleset, explanations = explain(x, predicted, names, classes, dataset.groups()[found], args.depth, args.folds,
                                    args.seed)
    truth = dataset.labels[found].astype(str)
    ruleset.info.update(
        model=model_info["name"], model_arg=args.model, model_kind=kind, data=args.data,
        explanation_features=model_info["explanation_features"], n_images=len(dataset),
        model_accuracy_on_data=round(float(np.mean(predicted == truth)), 4),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "rules.json", ruleset.to_json())
    write_text_atomic(out / "rules.md", markdown(ruleset, explanations))
    for explanation in explanations:
        plot_tree_png(explanation, names, out / f"tree_{explanation.label}.png")
    mean = np.mean(list(ruleset.fidelity.values()))
    print(f"explained {model_info['name']} on {int(found.sum())} faces: mean fidelity {mean:.4f} "
          f"({', '.join(f'{k} {v:.3f}' for k, v in ruleset.fidelity.items())}); wrote {args.out}")
    return 0


def model_kind(spec: str) -> str:
    if spec in ("forest", "cnn"):
        return spec
    path = Path(spec)
    if path.suffix not in (".npz", ".pt"):
        raise CommandError(f"--model must be forest, cnn, a .npz forest or a .pt CNN, got {spec!r}")
    if not path.is_file():
        raise CommandError(f"--model {spec}: no such file")
    return "forest" if path.suffix == ".npz" else "cnn"


def forest_inputs(args: argparse.Namespace, dataset: FaceDataset) -> tuple:
    """Named measurements of every found face and the forest's own labels for them."""
    from emotion_perception.models.landmark_model import EmotionModel

    model = EmotionModel.load(None if args.model == "forest" else args.model)
    data = with_landmarks(dataset, make_analyzer(args), make_cache(args), not args.quiet)
    found = data.extracted.found
    recipe = ForestRecipe(ForestSettings.like(model), data)
    predicted = predict(recipe, model, np.flatnonzero(found)).astype(str)
    x = features.compute("named", data.extracted.landmarks[found])
    info = {"name": model.name, "labels": model.labels, "explanation_features": "named"}
    return x, features.feature_names("named"), predicted, found, info


def cnn_inputs(args: argparse.Namespace, dataset: FaceDataset) -> tuple:
    """Penultimate-layer activations of every found face's crop and the CNN's own labels for them."""
    import torch

    from emotion_perception.data.face_data import extract_crops
    from emotion_perception.experiments.explanations import cnn_penultimate
    from emotion_perception.models.cnn import CnnClassifier

    torch.set_num_threads(1)
    classifier = CnnClassifier.load(None if args.model == "cnn" else args.model)
    data = extract_crops(dataset, make_analyzer(args), classifier.crop, make_cache(args), not args.quiet)
    crops = data.crops[data.found]
    proba = classifier.predict_crops(crops)
    predicted = np.array(classifier.labels)[proba.argmax(axis=1)]
    x = cnn_penultimate(classifier, crops)
    info = {"name": classifier.name, "labels": classifier.labels, "explanation_features": "cnn_penultimate"}
    return x, [f"unit_{k}" for k in range(x.shape[1])], predicted, data.found, info


def markdown(ruleset: RuleSet, explanations: list[ClassExplanation]) -> str:
    """rules.md: the fidelity/coverage table (one row per class) and the rule table."""
    info = ruleset.info
    units = ("named measurements in inter-ocular distances (IOD: between the eye centres; angles and slopes in "
             "rad, ratios unitless)" if info["explanation_features"] == "named"
             else "penultimate-layer activations of the CNN (unit_k)")
    lines = [
        f"# Rules explaining {info['model']}",
        "",
        f"Data: {', '.join(info['data'])}; {info['n_faces']} faces found in {info['n_images']} images. "
        f"The model's accuracy on these images: {info['model_accuracy_on_data']:.4f}.",
        f"Surrogates: one-vs-rest decision trees of depth {info['depth']}, fitted to the model's own labels "
        f"(not the ground truth), on {units}.",
        f"Fidelity: agreement with the model's one-vs-rest decision, held out by {info['fidelity_method']}.",
        f"Coverage: {info['coverage_method']}.",
        "",
        "Baseline: the fidelity of a surrogate that always answers \"rest\" (a rare class makes it high).",
        "",
        "| class | model says | fidelity (held out) | baseline | fidelity (fit) | coverage | coverage (held out) "
        "| rules |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in explanations:
        lines.append(f"| {e.label} | {e.n_predicted} | {e.fidelity:.4f} | {e.baseline:.4f} | {e.fidelity_train:.4f} | "
                     f"{e.coverage:.4f} | {e.coverage_cv:.4f} | {len(e.rules)} |")
    lines += [
        f"| **mean** | | **{np.mean([e.fidelity for e in explanations]):.4f}** | "
        f"{np.mean([e.baseline for e in explanations]):.4f} | "
        f"{np.mean([e.fidelity_train for e in explanations]):.4f} | "
        f"{np.mean([e.coverage for e in explanations]):.4f} | "
        f"{np.mean([e.coverage_cv for e in explanations]):.4f} | |",
        "",
        "## Rules",
        "",
        "support: faces the rule covers; precision: the fraction of them the model gave the class.",
        "",
        "| class | rule | support | precision |",
        "|---|---|---:|---:|",
    ]
    for e in explanations:
        if not e.rules:
            lines.append(f"| {e.label} | (no leaf of the depth-{info['depth']} tree predicts {e.label}) | | |")
        for rule in e.rules:
            lines.append(f"| {e.label} | {rule.text()} | {rule.support} | {rule.precision:.3f} |")
    if info["explanation_features"] == "named":
        used = sorted({c.feature for rs in ruleset.rules.values() for r in rs for c in r.conditions})
        lines += ["", "Heights, lifts and x are coordinates in the eye frame (origin between the eye centres, y down: "
                  "a negative mouth corner lift is a raised corner; x towards the subject's left).",
                  "Units of the measurements in the rules: "
                  + ", ".join(f"{name} ({unit_of(name) or 'ratio'})" for name in used) + "."]
    return "\n".join(lines) + "\n"


def plot_tree_png(explanation: ClassExplanation, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.tree import plot_tree

    figure, axes = plt.subplots(figsize=(4 + 3 * 2 ** min(explanation.tree.get_depth(), 4), 8))
    plot_tree(explanation.tree, feature_names=names, class_names=["other", explanation.label], filled=True,
              rounded=True, impurity=False, proportion=True, fontsize=8, ax=axes)
    axes.set_title(f"{explanation.label} vs rest: fidelity {explanation.fidelity:.3f} (held out), "
                   f"coverage {explanation.coverage:.3f}")
    save_figure(figure, path, dpi=80, bbox_inches="tight")
    plt.close(figure)
