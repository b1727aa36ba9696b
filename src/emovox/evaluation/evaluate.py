"""``evaluate``: score a manifest split with one model or an ensemble and write the full report.
A model is an emovox run dir, any ``save_pretrained`` audio-classification folder or a hub id."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.manifest import load_manifest, manifest_fingerprint
from ..errors import BadManifest
from ..inference.predict import Predictor, member_backend
from ..modelcard import record_evaluation
from ..models.source import ModelSource
from .abstention import aurc, check_target, coverage_curve, threshold_for_accuracy
from .groups import DEFAULT_GAP_WARNING, gap_warnings, group_metrics, group_values, groups_markdown, speaker_units
from .label_subset import LabelSubset, label_subset
from .metrics import classification_metrics, compare_table, confusion, reliability_bins

KEYS = ("accuracy", "uar", "macro_f1", "loss", "ece")


def evaluate(*, runs: Sequence[str | Path], manifest: str | Path, out: str | Path, split: str = "test",
             backend: str = "auto", compare: bool = False, progress: bool = False,
             allow_pickle: bool = False, all_labels: bool = False, scorer=None, method: str | None = None,
             by: Sequence[str] = (), target_accuracy: float | None = None,
             gap_warning: float = DEFAULT_GAP_WARNING) -> dict:
    """Score ``split`` of ``manifest`` and write metrics.json, confusion matrices, reliability diagram,
    misclassified.csv, predictions.csv and report.md into ``out``.

    With several runs the ensemble (averaged probabilities) is scored and compared with each member;
    with ``compare`` the runs are scored separately and shown side by side (e.g. flat vs multi-task),
    the top-level metrics being the first run's.
    Files that cannot be decoded are listed in ``errors.csv`` and left out of the metrics.
    A single emovox run dir keeps the split's headline metrics in ``emovox.json`` and its model card
    (``README.md``, ``model-index``) is rewritten with them.
    A manifest whose labels are a subset of the model's (another corpus) is scored among its own
    labels only (``label_subset``: probabilities restricted and renormalised; the report and
    ``metrics.json`` name the labels left out) unless ``all_labels``.
    ``scorer`` (rows of the split -> (probabilities or None per row, errors)) replaces the
    predictor's scoring, e.g. per-speaker adaptation; ``method`` then says in the report how the
    scores were made.

    Every report has the accuracy-coverage curve of the top-1 confidence (``coverage.png``/``.csv``)
    and its area (``aurc``); ``target_accuracy`` adds the threshold that reaches it on this split
    (run it on validation, then ``predict --min-confidence`` that threshold). A manifest of several
    corpora is always reported per corpus too (``by`` gains ``corpus``). Each ``by`` column of
    the manifest (gender, age, language, corpus, speaker, ...) gets per-group metrics and the
    largest gap; a UAR gap above ``gap_warning`` is a warning in the report and on the model card.

    Returns:
        The metrics written to ``metrics.json`` (accuracy, uar, macro_f1, loss, n, per_class, aurc,
        abstention, and with ``by`` groups and group_warnings).

    Raises:
        BadManifest: labels outside the run's scheme, an empty split, or a ``by`` column that is
        missing or empty; BadConfig: a target accuracy outside (0, 1]; BadRunDir: bad run dirs.
    """
    predictor = Predictor.from_run_dir(runs[:1] if compare else runs, backend=backend, allow_pickle=allow_pickle)
    scheme = predictor.scheme
    df, present = labelled_split(manifest, split, scheme)
    if "corpus" not in by and df["corpus"].astype(str).nunique() > 1:  # several corpora: each beside the pooled
        by = [*by, "corpus"]
    for column in by:  # a wrong column fails before anything is scored
        group_values(df, column, where=str(manifest))
    if target_accuracy is not None:
        check_target(target_accuracy)
    subset = None if all_labels else label_subset(scheme, present)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probs, errors = scorer(df) if scorer is not None else _score(predictor, list(df["path"]), progress)
    ok = [p is not None for p in probs]
    if errors:
        pd.DataFrame(errors, columns=["path", "error"]).to_csv(out / "errors.csv", index=False)
    df = df[ok].reset_index(drop=True)
    if df.empty:
        raise BadManifest(f"{manifest}: no file of split {split!r} could be scored (see {out / 'errors.csv'})")
    P = np.stack([p for p in probs if p is not None])
    answered = _answers(P, scheme, df)  # what predict --min-confidence sees: scores over all the model's labels
    if subset is not None:
        P, scheme = subset.apply(P), subset.scheme
    y = np.array([scheme.id(lab) for lab in df["label"]])
    metrics = classification_metrics(y, P, scheme)
    metrics.update(split=split, n_errors=len(errors), manifest_fingerprint=manifest_fingerprint(df))
    if subset is not None:
        metrics.update(restricted_to=list(scheme.labels), left_out_labels=list(subset.left_out))
    if method:
        metrics["method"] = method
    metrics.update(_abstention(out, *answered, target_accuracy))
    if by:
        metrics["groups"] = {c: group_metrics(y, P, group_values(df, c), scheme, clusters=speaker_units(df, c))
                             for c in by}
        metrics["group_warnings"] = gap_warnings(metrics["groups"], gap_warning)
    members = _member_metrics(runs, df, y, scheme, backend, progress, allow_pickle, subset) if len(runs) > 1 else {}
    if members:
        metrics["runs" if compare else "members"] = members
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_tables(out, df, y, P, scheme, metrics)
    _write_report(out, runs, manifest, split, metrics, members, compare, predictor.sources[0])
    if len(runs) == 1 and member_backend(backend, runs[0]) == "torch" and scorer is None:  # a run dir: its card gets the results
        record_evaluation(runs[0], metrics, split=split, manifest=manifest)
    return metrics


def labelled_split(manifest: str | Path, split: str, scheme) -> tuple[pd.DataFrame, set[str]]:
    """The manifest's ``split`` with labels in the run's spelling (``scheme.coerce``), and the
    labels the whole manifest uses.

    Raises:
        BadManifest: labels outside the scheme, or an empty or unknown split.
    """
    present = {scheme.coerce(lab) for lab in load_manifest(manifest)["label"]}
    df = load_manifest(manifest, split=split)
    df["label"] = [scheme.coerce(lab) for lab in df["label"]]
    unknown = sorted(present - set(scheme.labels))
    if unknown:
        raise BadManifest(f"{manifest}: labels {', '.join(unknown)} are not in the run's scheme "
                          f"{scheme.name!r} ({', '.join(scheme.labels)}); the model cannot answer them")
    return df, present


def result_lines(m: dict, *, split: str, out: str | Path) -> tuple[list[str], list[str]]:
    """What ``emovox evaluate`` prints: lines for standard output, and notes and warnings for standard error."""
    shown = [f"{split}: n={m['n']} accuracy {m['accuracy']:.4f}  UAR {m['uar']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
             f"(majority baseline accuracy {m['majority_accuracy']:.4f})"]
    said = [f"note: scored among the manifest's labels only; left out: {', '.join(m['left_out_labels'])}"
            ] if m.get("left_out_labels") else []
    shown += [f"by {column}: " + ", ".join(f"{g} UAR {v['uar']:.4f} (n={v['n']})" for g, v in res["groups"].items())
              for column, res in m.get("groups", {}).items()]
    said += [f"warning: {w}" for w in m.get("group_warnings", [])]
    target = m.get("abstention", {}).get("target")
    if target:
        shown.append(f"target accuracy {target['target_accuracy']:g}: " + (
            f"--min-confidence {target['min_confidence']:.4f} (coverage {target['coverage']:.1%})"
            if target["min_confidence"] is not None else "no threshold reaches it"))
    if m["n_errors"]:
        said.append(f"{m['n_errors']} file(s) could not be scored: see {Path(out) / 'errors.csv'}")
    return shown + [f"report: {Path(out) / 'report.md'}"], said


def _answers(P: np.ndarray, scheme, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Top score and whether the top label is right, as ``predict`` answers (before any label subset)."""
    return P.max(axis=1), np.array([scheme.labels[i] for i in P.argmax(axis=1)]) == df["label"].to_numpy()


def _abstention(out: Path, conf: np.ndarray, correct: np.ndarray, target: float | None) -> dict:
    """``aurc`` and ``abstention`` for metrics.json (on the scores ``predict`` gives, over all the
    model's labels); coverage.png/.csv written."""
    from .plots import plot_coverage

    area = aurc(conf, correct)
    chosen = threshold_for_accuracy(conf, correct, target) if target is not None else None
    plot_coverage(coverage_curve(conf, correct), out / "coverage", aurc=area["aurc"], chosen=chosen)
    return {"aurc": area["aurc"], "abstention": {**area, **({"target": chosen} if chosen else {})}}


def _score(predictor: Predictor, paths: list[str], progress: bool) -> tuple[list, list]:
    probs, errors = [], []
    for path, p, error, _ in predictor.scored(paths, progress=progress):
        probs.append(p)
        if p is None:
            errors.append((path, error))
    return probs, errors


def _member_metrics(runs, df, y, scheme, backend: str, progress: bool, allow_pickle: bool = False,
                    subset: LabelSubset | None = None) -> dict[str, dict]:
    out = {}
    for run in runs:
        p, _ = _score(Predictor.from_run_dir(run, backend=backend, allow_pickle=allow_pickle), list(df["path"]), progress)
        p = np.stack(p)
        m = classification_metrics(y, subset.apply(p) if subset is not None else p, scheme)
        out[str(run)] = {k: v for k, v in m.items() if k in KEYS or k.startswith(("emotion_", "intensity_"))}
    return out


def _write_tables(out: Path, df: pd.DataFrame, y: np.ndarray, P: np.ndarray, scheme, metrics: dict) -> None:
    from .plots import plot_confusion, plot_reliability

    pred = P.argmax(axis=1)
    plot_confusion(confusion(y, pred, len(scheme)), scheme.labels, out / "confusion_matrix",
                   title=f"{scheme.name}: UAR {metrics['uar']:.3f}, accuracy {metrics['accuracy']:.3f}")
    plot_reliability(reliability_bins(P, y), out / "reliability", ece=metrics["ece"])
    table = pd.DataFrame({
        "path": df["path"], "speaker": df["speaker"], "true": df["label"],
        "predicted": [scheme.labels[i] for i in pred], "confidence": P.max(axis=1),
        "true_prob": P[np.arange(len(y)), y],
    })
    table.to_csv(out / "predictions.csv", index=False, float_format="%.5f")
    wrong = table[table["true"] != table["predicted"]].sort_values("confidence", ascending=False)
    wrong[["path", "true", "predicted", "confidence"]].to_csv(out / "misclassified.csv", index=False,
                                                            float_format="%.5f")


def _write_report(out: Path, runs, manifest, split: str, m: dict, members: dict, compare: bool,
                  source: ModelSource) -> None:
    meta = source.meta
    assumed = [f"- assumed (the model has no emovox.json): {', '.join(source.defaults)}"] if source.defaults else []
    lines = [f"# Evaluation: {split} split", "",
             f"- models: {', '.join(map(str, runs))}", f"- manifest: {manifest} (fingerprint {m['manifest_fingerprint']})",
             f"- clips: {m['n']} ({m['n_errors']} could not be scored)",
             f"- training data fingerprint: {meta.get('manifest_fingerprint', 'unknown')}", *assumed, *_subset_lines(m),
             *([f"- scores: {m['method']}"] if m.get("method") else []), "",
             "## Headline", "",
             compare_table({"model": m, "majority baseline": {"accuracy": m["majority_accuracy"],
                                                              "uar": 1.0 / max(1, len([c for c in m["per_class"].values() if c["support"]])),
                                                              }}, keys=("accuracy", "uar", "macro_f1", "loss", "ece"))]
    if "emotion_accuracy" in m:
        lines += ["## Emotion and intensity alone", "",
                  compare_table({"emotion": {k.split("_", 1)[1]: v for k, v in m.items() if k.startswith("emotion_")},
                                 "intensity": {k.split("_", 1)[1]: v for k, v in m.items() if k.startswith("intensity_")}},
                                keys=("accuracy", "uar", "macro_f1"))]
    if members and compare:
        keys = KEYS + tuple(k for k in ("emotion_uar", "intensity_uar") if k in m)
        lines += ["## Runs side by side", "", compare_table(members, keys=keys)]
    elif members:
        lines += ["## Ensemble vs members", "", compare_table({"ensemble": m, **members}, keys=KEYS)]
    lines += _abstention_markdown(m)
    if "groups" in m:
        lines += groups_markdown(m["groups"], m["group_warnings"])
    lines += ["## Per class", "", "| label | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
              for lab, c in m["per_class"].items()]
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![reliability](reliability.png)", "",
              "Most confident mistakes: `misclassified.csv`. Every prediction: `predictions.csv`.", "",
              "## Training config", "", "```yaml", _yaml(meta.get("config", {"unknown": "not an emovox run"})),
              "```", ""]
    (out / "report.md").write_text("\n".join(lines))


def _subset_lines(m: dict) -> list[str]:
    if not m.get("left_out_labels"):
        return []
    return [f"- scored among the manifest's {len(m['restricted_to'])} labels only ({', '.join(m['restricted_to'])}); "
            f"the model's labels left out: {', '.join(m['left_out_labels'])} (probabilities restricted and "
            "renormalised; `--all-labels` scores among all)"]


def _abstention_markdown(m: dict) -> list[str]:
    a = m["abstention"]
    lines = ["## Abstaining when unsure", "",
             f"Answering only above a confidence threshold trades coverage for accuracy: AURC {a['aurc']:.3f} "
             f"(an oracle ranking: {a['optimal']:.3f}; excess {a['excess']:.3f}). Curve: `coverage.csv`.", ""]
    t = a.get("target")
    if t and t["min_confidence"] is not None:
        lines += [f"Target accuracy {t['target_accuracy']:g}: `--min-confidence {t['min_confidence']:.4f}` answers "
                  f"{t['coverage']:.1%} of the clips at accuracy {t['accuracy']:.3f} on this split "
                  "(choose it on validation, apply it to new audio with `emovox predict --min-confidence`).", ""]
    elif t:
        lines += [f"No threshold reaches accuracy {t['target_accuracy']:g} on this split.", ""]
    return lines + ["![accuracy-coverage](coverage.png)", ""]


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False).strip()
