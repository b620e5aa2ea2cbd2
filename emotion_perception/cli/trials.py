"""`emotion-perception trials`: the paper's robustness tables (and more) for the forest and the CNN, as a report
folder: report.md, results.json, results.csv and PNG plots. Finished cells are kept, so a re-run resumes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emotion_perception.cli.common import (
    add_analyzer_args,
    add_executor_args,
    executor_settings,
    make_analyzer,
    make_cache,
    output_folder,
    write_json,
)
from emotion_perception.cli.train import max_features_arg
from emotion_perception.core.atomic import write_text_atomic
from emotion_perception.core.errors import CommandError, TrialError
from emotion_perception.data.datasets import load_datasets
from emotion_perception.experiments.trials import ATTACKS, PAPER_ATTACKS, TrialSettings, run_trials
from emotion_perception.experiments.trials_report import attack_rows, report_markdown, summarize, write_csv, write_plots
from emotion_perception.features import DEFAULT_FEATURE_SET


def names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trials", help="robustness trials (clean, Type A/B, FGSM, PGD, scaling, noise, adaptive) with a report",
        description="Repeated train/test splits per model and attack; writes OUT/report.md, OUT/results.json, "
        "OUT/results.csv and PNG plots. Finished (model, attack, repeat) cells are kept under OUT/cells and "
        "reused by a re-run with the same settings.",
    )
    parser.add_argument("--data", action="append", required=True, metavar="DIR[:LABELS][@SPLIT]",
                        help="dataset folder(s), as for evaluate")
    parser.add_argument("--out", required=True, metavar="DIR", type=output_folder, help="report folder")
    parser.add_argument("--models", type=names, default=("forest",), help="forest[,cnn] (default forest)")
    parser.add_argument("--attacks", type=names, default=PAPER_ATTACKS,
                        help=f"comma list of {','.join(ATTACKS)} (default {','.join(PAPER_ATTACKS)}); type_a "
                             "brings its screened second row, type_a_screened")
    parser.add_argument("--feature-sets", type=names, default=(DEFAULT_FEATURE_SET, "centroid"),
                        help="forest feature sets, one forest row each (default named_hog,centroid)")
    parser.add_argument("--protocol", type=names, default=("subject-kfold",),
                        help="subject-kfold (default) and/or paper, comma-separated for both side by side")
    parser.add_argument("--repeats", type=int, default=30, help="forest repeats (default 30, as the paper)")
    parser.add_argument("--cnn-repeats", type=int, default=3, help="CNN repeats (default 3)")
    parser.add_argument("--adaptive-repeats", type=int, default=3, help="repeats of the adaptive attack (default 3)")
    parser.add_argument("--folds", type=int, default=5, help="test part = 1/folds of the data (default 5: 80/20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-features", type=max_features_arg, default="sqrt")
    parser.add_argument("--no-mirror", action="store_true", help="no mirror augmentation of the forest")
    parser.add_argument("--no-covered-forest", action="store_true",
                        help="forests without their covered-face part (the forests before it, for comparison)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of each cell (forest training, torch; default 1)")
    parser.add_argument("--cnn-arch", default="small_resnet")
    parser.add_argument("--cnn-device", default="cpu", choices=("cpu", "cuda"),
                        help="where the CNN rows train: cuda runs them on workers with the resource GPU (--cluster)")
    parser.add_argument("--cnn-epochs", type=int, default=15, help="CNN epoch budget per training (default 15)")
    parser.add_argument("--cnn-occlusion", type=float, default=TrialSettings.cnn_occlusion,
                        help="probability that a CNN training crop gets an occluder drawn from its landmarks, as "
                             f"`train cnn --occlusion` (default {TrialSettings.cnn_occlusion})")
    parser.add_argument("--epsilons", type=numbers, default=(0.01, 0.03, 0.06),
                        help="L-inf budgets of fgsm/pgd/adaptive; the first is the headline (default 0.01,0.03,0.06)")
    parser.add_argument("--noise-sigmas", type=numbers, default=(0.05, 0.02, 0.1),
                        help="Gaussian noise sigmas; the first is the headline (default 0.05,0.02,0.1)")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--adaptive-images", type=int, default=30, help="test images attacked per repeat")
    parser.add_argument("--adaptive-queries", type=int, default=100, help="query budget per image")
    parser.add_argument("--surrogate", default=None, metavar="CNN.pt",
                        help="craft the forest's FGSM/PGD on this CNN (default: cross-fitted CNNs trained here)")
    parser.add_argument("--surrogate-epochs", type=int, default=15)
    parser.add_argument("--visibility-model", default=None, metavar="MODEL.npz",
                        help="the tamper check's model (default: the shipped one)")
    add_analyzer_args(parser)
    add_executor_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = TrialSettings(
        models=args.models, attacks=args.attacks, feature_sets=args.feature_sets, protocols=args.protocol,
        repeats=args.repeats, cnn_repeats=args.cnn_repeats, adaptive_repeats=args.adaptive_repeats,
        seed=args.seed, folds=args.folds, n_estimators=args.n_estimators, max_features=args.max_features,
        mirror=not args.no_mirror, threads=args.threads, cnn_arch=args.cnn_arch,
        cnn_epochs=args.cnn_epochs, cnn_occlusion=args.cnn_occlusion, cnn_device=args.cnn_device,
        epsilons=args.epsilons, noise_sigmas=args.noise_sigmas,
        pgd_steps=args.pgd_steps, adaptive_images=args.adaptive_images, adaptive_queries=args.adaptive_queries,
        surrogate=args.surrogate, surrogate_epochs=args.surrogate_epochs, visibility_model=args.visibility_model,
        covered_forest=not args.no_covered_forest,
    )
    try:
        settings.check()
    except TrialError as error:
        raise CommandError(str(error)) from None
    executor = executor_settings(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a folder")
    dataset = load_datasets(args.data)
    try:
        run_result = run_trials(dataset, settings, out, make_analyzer(args), make_cache(args), not args.quiet,
                                executor)
    except TrialError as error:
        raise CommandError(str(error)) from None
    summary = summarize(run_result)
    summary["meta"]["command"] = args.command_line
    write_json(out / "results.json", summary)
    write_csv(out / "results.csv", summary)
    plots = write_plots(out, summary)
    write_text_atomic(out / "report.md", report_markdown(summary, args.command_line, plots))
    print_table(summary)
    meta = summary["meta"]
    print(f"report: {out / 'report.md'} ({meta['wall_seconds']:.1f} s, {meta['cells_computed']} cells computed, "
          f"{meta['cells_reused']} reused; {meta['executor']})")
    if meta["failed_cells"]:
        print(f"emotion-perception trials: {len(meta['failed_cells'])} cell(s) failed (their worker was lost each "
              f"time), e.g. {meta['failed_cells'][0]['cell']}; run the same command again to compute them",
              file=sys.stderr)
        return 1
    return 0


def print_table(summary: dict) -> None:
    for model, row in summary["results"].items():
        for attack, r in attack_rows(row).items():
            p = r.get("paired_vs_clean", {}).get("p")
            extra = "" if p is None else f", p={p:.3g}"
            print(f"{model:18s} {attack:9s} {100 * r['accuracy_mean']:5.1f} ± {100 * r['ci95']:.1f} %"
                  f" ({r['repeats']} repeats{extra})")
