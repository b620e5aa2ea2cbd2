"""Trial cells -> statistics (mean, 95% CI, tests against clean), results.json, results.csv, report.md, PNGs."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from emotion_perception.core.atomic import atomic_path, save_figure
from emotion_perception.experiments.evaluation import mean_ci95, plot_confusion

ATTACK_TITLES = {
    "clean": "clean", "type_a": "Type A (eye boxes in one training class)",
    "type_a_screened": "Type A, training images screened", "type_b": "Type B (jaw box at test)",
    "mask": "surgical mask at test", "fgsm": "FGSM", "pgd": "PGD", "scaling": "image-scaling attack",
    "scaling_defended": "image-scaling attack, area downscale", "noise": "Gaussian noise",
    "adaptive": "adaptive black-box (Square attack)",
}
POISONING = ("type_a", "type_a_screened")


def attack_rows(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The attacks of one model's results (without its `tamper_detection`)."""
    return {attack: result for attack, result in row.items() if attack in ATTACK_TITLES}


# ------------------------------------------------------------------------------------------ statistics


def welch_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's two-sample t-test (unequal variances), two-sided: t, degrees of freedom, p.
    Two constant samples give p = 1 when equal, 0 when not; fewer than two values each give NaN."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return {"t": math.nan, "df": math.nan, "p": math.nan}
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    diff = x.mean() - y.mean()
    if vx + vy == 0:
        return {"t": 0.0 if diff == 0 else math.copysign(math.inf, diff), "df": math.nan,
                "p": 1.0 if diff == 0 else 0.0}
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return {"t": float(t), "df": float(df), "p": float(2 * stats.t.sf(abs(t), df))}


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired t-test on the per-repeat differences a - b (same split in both), two-sided: t, df, p."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    n = min(len(x), len(y))
    d = x[:n] - y[:n]
    if n < 2:
        return {"t": math.nan, "df": math.nan, "p": math.nan}
    sd = d.std(ddof=1)
    if sd == 0:
        mean = d.mean()
        return {"t": 0.0 if mean == 0 else math.copysign(math.inf, mean), "df": float(n - 1),
                "p": 1.0 if mean == 0 else 0.0}
    t = d.mean() / (sd / math.sqrt(n))
    return {"t": float(t), "df": float(n - 1), "p": float(2 * stats.t.sf(abs(t), n - 1))}


# ------------------------------------------------------------------------------------------ aggregation


def headline_variant(attack: str, settings: dict[str, Any]) -> str:
    if attack in ("fgsm", "pgd", "adaptive"):
        return f"eps={settings['epsilons'][0]:g}"
    if attack == "noise":
        return f"sigma={settings['noise_sigmas'][0]:g}"
    return "all"


def _mean_per_class(per_class: list[dict[str, float | None]], classes: list[str]) -> dict[str, float | None]:
    out = {}
    for label in classes:
        values = [p[label] for p in per_class if p.get(label) is not None]
        out[label] = float(np.mean(values)) if values else None
    return out


def summarize_variant(cells: list[dict], variant: str, classes: list[str]) -> dict[str, Any]:
    accuracies = [c["variants"][variant]["accuracy"] for c in cells]
    mean, half = mean_ci95(accuracies)
    confusion = np.sum([c["variants"][variant]["confusion"] for c in cells], axis=0).tolist()
    out = {"accuracy_mean": mean, "ci95": half, "accuracy_repeats": accuracies,
           "per_class": _mean_per_class([c["variants"][variant]["per_class_recall"] for c in cells], classes),
           "confusion": confusion, "n_test_mean": float(np.mean([c["variants"][variant]["n"] for c in cells]))}
    queries = [c["variants"][variant]["mean_queries"] for c in cells if "mean_queries" in c["variants"][variant]]
    if queries:
        out["mean_queries"] = float(np.mean(queries))
    return out


def summarize_cell(attack: str, cells: list[dict], classes: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """results[model][attack]: headline accuracy (mean, ci95, per repeat), per-class accuracy, timing, and the
    variants (epsilons, sigmas, poisoned classes)."""
    timing = {
        "repeats": len(cells),
        "seconds": round(sum(c["train_seconds"] + c["test_seconds"] for c in cells), 2),
        "train_seconds_mean": float(np.mean([c["train_seconds"] for c in cells])),
        "test_seconds_mean": float(np.mean([c["test_seconds"] for c in cells])),
        "cell_seconds": [c.get("seconds") for c in cells],  # wall seconds of each repeat's cell where it ran
    }
    if attack in POISONING:
        poisoned = {target: summarize_variant(cells, target, classes) for target in cells[0]["variants"]}
        accuracies = [float(np.mean([c["variants"][t]["accuracy"] for t in c["variants"]])) for c in cells]
        mean, half = mean_ci95(accuracies)
        per_class = {t: poisoned[t]["per_class"].get(t) for t in classes if t in poisoned}
        screened, repaired = ({t: float(np.mean([c.get(key, {}).get(t, 0) for c in cells])) for t in poisoned}
                              for key in ("screened_out", "repaired"))
        return {"accuracy_mean": mean, "ci95": half, "accuracy_repeats": accuracies, "per_class": per_class,
                "headline": "mean over poisoned classes; per_class[c]: accuracy of c when c is poisoned",
                "poisoned": poisoned, "screened_out_mean": screened, "repaired_mean": repaired, **timing}
    variants = {v: summarize_variant(cells, v, classes) for v in cells[0]["variants"]}
    headline = headline_variant(attack, settings)
    out = {**{k: v for k, v in variants[headline].items()}, "headline": headline, **timing}
    if len(variants) > 1:
        out["by_variant"] = {v: {k: s[k] for k in ("accuracy_mean", "ci95", "per_class", "accuracy_repeats")}
                             | ({"mean_queries": s["mean_queries"]} if "mean_queries" in s else {})
                             for v, s in variants.items()}
    return out


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """results.json: results[model][attack] for the first protocol, every protocol under by_protocol, and
    each attack's difference from clean with Welch's and the paired t-test."""
    meta = run["meta"]
    classes, settings = meta["classes"], meta["settings"]
    by_protocol: dict[str, dict[str, dict[str, Any]]] = {}
    for protocol, models in run["cells"].items():
        table = by_protocol.setdefault(protocol, {})
        for model, attacks in models.items():
            row = table.setdefault(model, {})
            for attack in settings["attacks"]:
                if attacks.get(attack):
                    row[attack] = summarize_cell(attack, attacks[attack], classes, settings)
            clean = row.get("clean")
            for attack, result in row.items():
                if clean is not None and attack != "clean":
                    result["delta_vs_clean"] = result["accuracy_mean"] - clean["accuracy_mean"]
                    result["welch_vs_clean"] = welch_test(result["accuracy_repeats"], clean["accuracy_repeats"])
                    result["paired_vs_clean"] = paired_test(result["accuracy_repeats"], clean["accuracy_repeats"])
                    result["p_value"] = result["paired_vs_clean"]["p"]
    for table in by_protocol.values():
        for row in table.values():
            row["tamper_detection"] = meta.get("tamper_detection")
    first = settings["protocols"][0]
    by_protocol = _finite(by_protocol)
    return {"version": 1, "protocol": first, "results": by_protocol.get(first, {}), "by_protocol": by_protocol,
            "meta": meta}


def _finite(value: Any) -> Any:
    """NaN (a test on fewer than two repeats) -> None, so that results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------ output files


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def csv_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for protocol, models in summary["by_protocol"].items():
        for model, attacks in models.items():
            for attack, result in attack_rows(attacks).items():
                variants = result.get("by_variant") or result.get("poisoned") or {result["headline"]: result}
                for variant, values in variants.items():
                    rows.append({
                        "protocol": protocol, "model": model, "attack": attack,
                        "variant": variant if attack not in POISONING else f"poisoned={variant}",
                        "headline": variant == result.get("headline"),
                        "accuracy_mean": round(values["accuracy_mean"], 5), "ci95": round(values["ci95"], 5),
                        "repeats": result["repeats"], "p_paired_vs_clean": result.get("paired_vs_clean", {}).get("p"),
                        "p_welch_vs_clean": result.get("welch_vs_clean", {}).get("p"), "seconds": result["seconds"],
                    })
    return rows


def write_csv(path: Path, summary: dict[str, Any]) -> None:
    rows = csv_rows(summary)
    with atomic_path(path) as partial, partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)


def _table(title: str, header: list[str], align: str, rows: list[list[str]], *notes: str) -> list[str]:
    """A markdown section: its heading, a table (`align`: l or r per column) and notes below it."""
    separator = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return [title, "", "| " + " | ".join(header) + " |", separator, *("| " + " | ".join(row) + " |" for row in rows),
            "", *[line for note in notes for line in (note, "")]]


def _settings_section(meta: dict[str, Any], command: str) -> list[str]:
    """What was run: data, protocols, repeats, models and attacks, wall time."""
    s, classes = meta["settings"], meta["classes"]
    surrogate = (f"the CNN `{s['surrogate']}`" if s["surrogate"] else
                 f"{s['surrogate_folds']} cross-fitted surrogate CNNs ({s['surrogate_epochs']} epochs; each image "
                 "attacked by the one that never saw its subject)")
    return ["# Robustness trials", "", f"`{command}`", "",
        f"Data: `{meta['data']}` — {meta['n_images']} images, {len(classes)} classes"
        + (f", {meta['subjects']} subjects" if meta.get("subjects") else "") + ".",
        f"Protocol(s): {', '.join(s['protocols'])}. Each repeat is one train/test split: fold 0 of {s['folds']} "
        "stratified folds reshuffled with seed + repeat (subject-kfold: StratifiedGroupKFold by subject, nobody on "
        "both sides; paper: StratifiedKFold over images, as Shehu et al.'s random split).",
        f"Repeats: forest {s['repeats']}, CNN {s['cnn_repeats']}, adaptive attack "
        f"min(repeats, {s['adaptive_repeats']}). Mean ± half-width of the 95% t-interval over repeats; p: paired "
        "t-test of the per-repeat accuracy against clean on the same split (Welch's two-sample test in "
        "results.json as well).",
        f"Forest: {s['n_estimators']} trees, max_features {s['max_features']}, mirror augmentation "
        f"{'on' if s['mirror'] else 'off'}. CNN: {s['cnn_arch']} {s['cnn_input_size']} px, "
        f"{s['cnn_epochs']} epochs, {s.get('cnn_device', 'cpu').upper()}. {s['threads']} thread(s) per cell.",
        f"FGSM/PGD on the forest: transferred from {surrogate}; on the CNN: white-box on that repeat's CNN. PGD: "
        f"{s['pgd_steps']} steps. Adaptive: Square attack, {s['adaptive_queries']} queries, "
        f"{s['adaptive_images']} test images per repeat, on each model's whole pipeline (dlib + features + forest; "
        "detector + crop + CNN).",
        f"Boxes: eye margin {s['eye_margin']}, jaw margin {s['jaw_margin']}, fill {s['box_fill']}. Scaling: the camera "
        f"image is the test image at {s['scaling_factor']}x, the victim resizes it back ({s['scaling_interpolation']})"
        " and sees an image of another class.",
        f"Wall time of this run: {meta['wall_seconds']:.1f} s ({meta['cells_computed']} cells computed on "
        f"{meta.get('executor', 'this process')}, {meta['cells_reused']} reused from an earlier run"
        + (f", {len(meta['failed_cells'])} failed: listed under Time" if meta.get("failed_cells") else "") + ").",
        ""]


def _overall_section(summary: dict[str, Any]) -> list[str]:
    """Per protocol: every model and attack with its CI, difference to clean, tests and times."""
    lines = []
    for protocol, models in summary["by_protocol"].items():
        rows = [[model, attack, r["headline"] if attack not in POISONING else "each class", _pct(r["accuracy_mean"]),
                 _pct(r["ci95"]), _pct(r.get("delta_vs_clean")), _p(r.get("paired_vs_clean", {}).get("p")),
                 _p(r.get("welch_vs_clean", {}).get("p")), str(r["repeats"]), f"{r['train_seconds_mean']:.2f}",
                 f"{r['test_seconds_mean']:.2f}"]
                for model, attacks in models.items() for attack, r in attack_rows(attacks).items()]
        header = ["model", "attack", "setting", "accuracy", "95% CI ±", "Δ vs clean", "p (paired)", "p (Welch)",
                  "repeats", "train s/repeat", "test s/repeat"]
        lines += _table(f"## Overall accuracy (%) — {protocol}", header, "lllrrrrrrrr", rows)
    return lines


def _protocols_section(summary: dict[str, Any]) -> list[str]:
    """With several protocols: their accuracies side by side."""
    protocols = list(summary["by_protocol"])
    if len(protocols) < 2:
        return []
    rows = []
    for model, attacks in summary["by_protocol"][protocols[0]].items():
        for attack in attack_rows(attacks):
            found = [summary["by_protocol"][p].get(model, {}).get(attack) for p in protocols]
            rows.append([model, attack] + [f"{_pct(r['accuracy_mean'])} ± {_pct(r['ci95'])}" if r else "–"
                                           for r in found])
    return _table("## Protocols side by side (accuracy %, mean ± 95% CI)", ["model", "attack", *protocols],
                  "ll" + "r" * len(protocols), rows)


def _type_a_section(results: dict[str, Any], classes: list[str]) -> list[str]:
    """Table III: each class's accuracy when its own training images carry eye boxes."""
    rows = []
    for model, row in results.items():
        if "type_a" in row:
            clean = row.get("clean", {}).get("per_class", {})
            rows.append([model] + [_pct(row["type_a"]["per_class"].get(c)) + (f" ({_pct(clean.get(c))})" if clean
                                                                              else "") for c in classes])
        if "type_a_screened" in row:
            screened = row["type_a_screened"]
            rows.append([f"{model}, screened"] + [
                f"{_pct(screened['per_class'].get(c))} (-{screened['screened_out_mean'].get(c, 0):.0f}, "
                f"~{screened.get('repaired_mean', {}).get(c, 0):.0f})" for c in classes])
    if not rows:
        return []
    return _table("## Table III — accuracy (%) of each class when its own training images carry eye boxes",
                  ["model", *classes], "l" + "r" * len(classes), rows,
                  "In brackets: the same class with clean training data; for screened rows, the training images the "
                  "tamper check left out (-) and those kept with their covered regions' features replaced (~), "
                  "means per repeat.")


def _tamper_section(meta: dict[str, Any]) -> list[str]:
    """The tamper check's detection rates per attack and its false alarms on clean images."""
    found = meta.get("tamper_detection")
    if not found:
        return []
    rows = [[key, _pct(rate)] for key, rate in found["tpr"].items()]
    rows.append([f"clean images (false positives, n={found['n_clean']})", _pct(found["fpr"])])
    return _table("## Tamper check: share of images flagged (%)", ["images", "flagged"], "lr", rows,
                  "Attacked images: the true-positive rate (images the attack changed, whose face was found); the "
                  "scaling attack is checked on the camera image, before any resize.")


def _per_class_section(results: dict[str, Any], classes: list[str]) -> list[str]:
    """Per model: each class's accuracy under each attack's headline setting."""
    lines = ["## Per-class accuracy (%) under each attack (headline setting)", ""]
    for model, row in results.items():
        rows = [[attack] + [_pct(r["per_class"].get(c)) for c in classes] + [_pct(r["accuracy_mean"])]
                for attack, r in attack_rows(row).items()]
        lines += _table(f"### {model}", ["attack", *classes, "overall"], "l" + "r" * (len(classes) + 1), rows)
    return lines


def _strength_section(results: dict[str, Any]) -> list[str]:
    """Accuracy against each attack's strength (epsilon, sigma)."""
    rows = [[model, attack, variant, _pct(v["accuracy_mean"]), _pct(v["ci95"]),
             f"{v['mean_queries']:.0f}" if "mean_queries" in v else ""]
            for model, row in results.items() for attack, r in attack_rows(row).items() if "by_variant" in r
            for variant, v in r["by_variant"].items()]
    if not rows:
        return []
    return _table("## Robust accuracy (%) against the attack's strength",
                  ["model", "attack", "setting", "accuracy", "95% CI ±", "mean queries"], "lllrrr", rows,
                  "Adaptive eps=0: the same test subset, unattacked. Epsilon is on the [0, 1] pixel scale "
                  "(0.01 = 2 grey levels after rounding).")


def _time_section(summary: dict[str, Any]) -> list[str]:
    """Where the run's time went: the preparation steps, every cell's seconds where it ran, the checks of the
    attacks, and the cells that failed."""
    meta = summary["meta"]
    rows = [[k, f"{v:.1f}"] for k, v in meta["precompute_seconds"].items()]
    rows += [[f"{protocol} {model}: train + test, all cells of this run's results",
              f"{sum(r['seconds'] for r in attack_rows(attacks).values()):.1f}"]
             for protocol, models in summary["by_protocol"].items() for model, attacks in models.items()]
    rows.append(["whole run (wall)", f"{meta['wall_seconds']:.1f}"])
    lines = _table("## Time", ["step", "seconds"], "lr", rows)
    cells = [[protocol, model, attack, len(times), f"{np.mean(times):.2f}", f"{np.min(times):.2f}",
              f"{np.max(times):.2f}", f"{np.sum(times):.1f}"]
             for protocol, models in summary["by_protocol"].items() for model, attacks in models.items()
             for attack, r in attack_rows(attacks).items()
             if (times := [t for t in r.get("cell_seconds", []) if t is not None])]
    if cells:
        total = sum(float(row[-1]) for row in cells)
        lines += _table("### Seconds per cell", ["protocol", "model", "attack", "cells", "mean", "min", "max", "sum"],
                        "lllrrrrr", [[str(v) for v in row] for row in cells],
                        f"Each cell's wall time where it ran (the clean model's training counts in the first cell of "
                        f"a repeat that needed it); per repeat in results.json (`cell_seconds`). Added up: {total:.1f} "
                        f"s of cells, run on {meta.get('executor', 'this process')}.")
    if meta.get("attack_info"):
        lines += ["Attack checks: " + "; ".join(f"{k}: " + ", ".join(f"{n} {v:.2f}" for n, v in info.items())
                                                 for k, info in meta["attack_info"].items()), ""]
    if meta.get("failed_cells"):
        lines += [f"**Failed cells** ({len(meta['failed_cells'])}; their worker was lost each time it ran them; they "
                  "are left out of the tables above, and a re-run computes them):", "",
                  *[f"- `{f['cell']}`: {f['error']}" for f in meta["failed_cells"]], ""]
    return lines


def report_markdown(summary: dict[str, Any], command: str, plots: list[str]) -> str:
    """report.md: the settings, then one section per table, then the plots."""
    meta, results = summary["meta"], summary["results"]
    lines = [*_settings_section(meta, command), *_overall_section(summary), *_protocols_section(summary),
             *_type_a_section(results, meta["classes"]), *_tamper_section(meta),
             *_per_class_section(results, meta["classes"]),
             *_strength_section(results), *_time_section(summary)]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_plots(out: Path, summary: dict[str, Any]) -> list[str]:
    """per_class_<model>.png, accuracy_vs_eps.png and confusion_<model>_<attack>.png; returns the names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes, results, names = summary["meta"]["classes"], summary["results"], []
    for model, row in results.items():
        figure, axes = plt.subplots(figsize=(1.5 + 1.1 * len(classes), 4))
        width = 0.8 / max(len(attack_rows(row)), 1)
        for k, (attack, r) in enumerate(attack_rows(row).items()):
            values = [100 * (r["per_class"].get(c) or 0) for c in classes]
            axes.bar(np.arange(len(classes)) + k * width - 0.4 + width / 2, values, width, label=attack)
        axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(0, 105)
        axes.set_title(f"{model}: per-class accuracy per attack (type_a: the poisoned class)", fontsize=9)
        axes.legend(fontsize=7, ncol=2)
        figure.tight_layout()
        name = f"per_class_{model}.png"
        save_figure(figure, out / name, dpi=110)
        plt.close(figure)
        names.append(name)
    curves = [(model, attack, r) for model, row in results.items() for attack, r in attack_rows(row).items()
              if attack in ("fgsm", "pgd", "adaptive", "noise") and "by_variant" in r]
    if curves:
        figure, axes = plt.subplots(figsize=(6.5, 4.2))
        for model, attack, r in curves:
            points = sorted((float(v.split("=")[1]), s["accuracy_mean"], s["ci95"]) for v, s in r["by_variant"].items())
            x, y, e = (np.array(column) for column in zip(*points))
            axes.errorbar(x, 100 * y, yerr=100 * e, marker="o", capsize=3, label=f"{model} {attack}",
                          linestyle="--" if attack == "noise" else "-")
        axes.set_xlabel("epsilon (L-inf, [0,1] pixels); noise: sigma")
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(0, 100)
        axes.legend(fontsize=7)
        axes.set_title("robust accuracy against attack strength", fontsize=9)
        figure.tight_layout()
        save_figure(figure, out / "accuracy_vs_eps.png", dpi=110)
        plt.close(figure)
        names.append("accuracy_vs_eps.png")
    for model, row in results.items():
        for attack, r in attack_rows(row).items():
            if attack in POISONING:
                continue
            name = f"confusion_{model}_{attack}.png"
            plot_confusion(r["confusion"], classes, out / name,
                           f"{model} {attack} ({r['headline']}), summed over {r['repeats']} repeats")
            names.append(name)
    return names
