"""The model card: every run dir's ``README.md`` in the Hugging Face model-card format.

YAML front matter (``library_name``, ``pipeline_tag``, ``tags``, ``base_model``, ``datasets``,
``model-index`` with the test metrics ``evaluate`` recorded) and a body a reader needs: the labels,
the training recipe, the data report's warnings, the speaker-independent protocol, how to load
the model and its limitations. The card is rendered from ``emovox.json`` alone, so it is written
when a run is saved and rewritten whenever ``evaluate`` records new results.

``library_name`` is ``transformers`` only where a plain ``pipeline("audio-classification")``
computes the scores ``emovox predict`` does (:func:`pipeline_differences` is empty: a stock head,
no silence trimming, a wav2vec2-family model or a ``pad_to_window`` Whisper run, the temperature
folded into the weights); then the Hub's ``pipeline(...)`` snippet and widget give this model.
Otherwise the card says ``emovox``, shows emovox first, and where a pipeline still loads the
folder, says what it does differently and how to get a run dir it reproduces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import BadRunDir
from .rundir import META, RunDir, is_run_dir, open_run, read_meta, update_meta

CARD = "README.md"
PIPELINE_TAG = "audio-classification"
CARD_METRICS = (("accuracy", "accuracy", "Accuracy", None), ("uar", "uar", "UAR (unweighted average recall)", None),
                ("macro_f1", "f1", "Macro-F1", {"average": "macro"}))
CORPUS_NAMES = {"crema-d": "CREMA-D", "ravdess": "RAVDESS", "csv": "CSV corpus", "folders": "folder corpus",
                "hf": "Hugging Face dataset"}


def data_summary(df, *, manifest: str | Path) -> dict[str, Any]:
    """What the card says about the training data: corpus, clips and speakers per split, speakers
    in two splits, and the data report's warnings (confounds, notes), from the manifest's rows
    and the ``data_report.json`` that ``prepare`` wrote beside it."""
    import json

    from .data.report import confounds, describe

    d = describe(df)
    report = Path(manifest).parent / "data_report.json"
    saved = json.loads(report.read_text()) if report.is_file() else {}
    warnings = saved.get("warnings") or confounds(df)
    corpora = sorted({str(c) for c in df["corpus"] if str(c)}) if "corpus" in df else []
    return {"corpora": corpora, "source": saved.get("source", {}), "warnings": list(warnings),
            "leaked_speakers": d["leaked_speakers"],
            "splits": {s: {"n": v["n"], "speakers": len(v["speakers"]),
                           "hours": round(v["duration"]["total_s"] / 3600, 3)} for s, v in d["splits"].items()}}


def hub_id(name: str | None) -> str | None:
    """``name`` when it is a hub model id (``owner/name``, not a local folder), the hub model a
    registry name copies (``whisper-base`` -> ``openai/whisper-base``), else None."""
    from .models.registry import REGISTRY

    if name in REGISTRY and not Path(name).exists():
        return REGISTRY[name].hub_id
    if not name or Path(name).exists() or name.count("/") != 1:
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def card_metadata(run: RunDir, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The front matter as a plain dict (``model-index`` included when results are recorded)."""
    from huggingface_hub import EvalResult, ModelCardData

    data = meta.get("data", {})
    model_type = _model_type(run)
    stock = pipeline_differences(run, meta) == []
    tags = ["emovox", "audio-classification", "speech-emotion-recognition", "emotion-recognition"]
    tags += [t for t in (model_type, meta.get("scheme", {}).get("name")) if t]
    results = []
    for split, m in meta.get("evaluation", {}).items():
        ds_type, ds_name = _dataset_identity(meta, m)
        for key, metric_type, name, args in CARD_METRICS:
            if key in m:
                results.append(EvalResult(task_type=PIPELINE_TAG, task_name="Speech emotion recognition",
                                          dataset_type=ds_type, dataset_name=ds_name, dataset_split=split,
                                          metric_type=metric_type, metric_name=f"{split.capitalize()} {name}",
                                          metric_value=round(float(m[key]), 4), metric_args=args))
    card = ModelCardData(
        library_name="transformers" if stock else "emovox", pipeline_tag=PIPELINE_TAG, tags=tags,
        base_model=hub_id(meta.get("model_source")),
        datasets=list(meta.get("hub_datasets") or data.get("source", {}).get("hub_ids") or []) or None,
        metrics=["accuracy", "uar", "f1"], model_name=run.root.resolve().name if results else None,
        eval_results=results or None)
    return card.to_dict()


def pipeline_differences(run: RunDir, meta: Mapping[str, Any]) -> list[str] | None:
    """What a plain ``transformers.pipeline`` does otherwise than ``emovox predict`` for this run:
    None when it cannot load the folder at all (an emovox head), [] when it gives the same scores."""
    import json
    from types import SimpleNamespace

    from .models.backbones import backbone_for

    if not stock_head(run) or meta.get("kind") == "ensemble":
        return None
    try:
        settings = json.loads((run.root / "preprocessor_config.json").read_text())
    except (OSError, ValueError):
        settings = {}
    family = backbone_for(SimpleNamespace(model_type=_model_type(run)), strict=False)
    out = family.pipeline_differences(settings if isinstance(settings, dict) else {})
    temperature = float(meta.get("temperature") or 1.0)
    if not meta.get("temperature_in_weights") and abs(temperature - 1.0) > 1e-6:
        out.append(f"emovox divides the logits by the fitted temperature {temperature:.3g}; the pipeline does not "
                   "(same top-1 label, other scores)")
    return out


def stock_head(run: RunDir) -> bool:
    """True when the run's model is a stock Transformers class (no emovox head file)."""
    from .models.heads import HEAD_FILE

    return not (run.root / HEAD_FILE).exists()


def _model_type(run: RunDir) -> str:
    import json

    try:
        return str(json.loads((run.root / "config.json").read_text()).get("model_type", ""))
    except (OSError, ValueError):
        return ""


def _dataset_identity(meta: Mapping[str, Any], m: Mapping[str, Any]) -> tuple[str, str]:
    """(type, name) of an evaluation's dataset: a hub id where known, else the corpus name."""
    ids = list(meta.get("hub_datasets") or meta.get("data", {}).get("source", {}).get("hub_ids") or [])
    corpus = m.get("corpus") or ", ".join(meta.get("data", {}).get("corpora", [])) or "custom"
    return (ids[0] if ids else corpus), (ids[0] if ids else CORPUS_NAMES.get(corpus, corpus))


def render_card(run_dir: str | Path) -> str:
    """The card's text (front matter and body) for a run dir, from its ``emovox.json``.

    Raises:
        BadRunDir: not an emovox run dir.
    """
    import yaml

    run = open_run(run_dir)
    meta = read_meta(run)
    front = yaml.safe_dump(card_metadata(run, meta), sort_keys=False, allow_unicode=True).strip()
    return f"---\n{front}\n---\n\n" + "\n".join(_body(run, meta)) + "\n"


def write_model_card(run_dir: str | Path) -> Path:
    """Write (or rewrite) ``RUN/README.md`` and return its path; ``emovox.json`` gets ``loaders``:
    which loaders give the scores ``emovox predict`` does, and what a plain pipeline does otherwise.

    Raises:
        BadRunDir: not an emovox run dir.
    """
    run = open_run(run_dir)
    meta = read_meta(run)
    differs = pipeline_differences(run, meta)
    loaders = {"emovox": True, "transformers_pipeline": differs == [], "pipeline_differences": differs}
    if meta.get("loaders") != loaders:  # emovox.json says which loaders reproduce `emovox predict`
        update_meta(run, loaders=loaders)
    path = Path(run_dir) / CARD
    path.write_text(render_card(run_dir), encoding="utf-8")
    return path


def record_evaluation(run_dir: str | Path, metrics: Mapping[str, Any], *, split: str, manifest: str | Path) -> Path | None:
    """Keep a split's headline metrics in ``emovox.json`` and rewrite the card; a model that is not
    an emovox run dir (a plain ``save_pretrained`` folder, a hub id) is left alone (None)."""
    if not is_run_dir(run_dir):
        return None
    run = RunDir(Path(run_dir))
    meta = read_meta(run)
    keep = ("accuracy", "uar", "macro_f1", "majority_accuracy", "n", "manifest_fingerprint", "group_warnings")
    result = {k: metrics[k] for k in keep if k in metrics}
    corpora = meta.get("data", {}).get("corpora", [])
    result.update(manifest=str(Path(manifest).resolve()), corpus=corpora[0] if len(corpora) == 1 else "")
    update_meta(run, evaluation={**meta.get("evaluation", {}), split: result})
    return write_model_card(run.root)


def load_card(run_dir: str | Path):
    """Parse ``RUN/README.md`` with ``huggingface_hub.ModelCard`` and check what the Hub checks
    offline: the metadata and ``model-index`` parse, ``pipeline_tag`` is audio-classification,
    ``base_model`` and ``datasets`` are valid repo ids.

    Raises:
        BadRunDir: no card, or a card that does not pass.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(run_dir) / CARD
    if not path.is_file():
        raise BadRunDir(f"{path}: no model card (it is written by `emovox train` and `emovox evaluate`)")
    try:
        card = ModelCard.load(path)
        data = card.data
        if data.pipeline_tag != PIPELINE_TAG or not data.library_name:
            raise ValueError(f"pipeline_tag {data.pipeline_tag!r}, library_name {data.library_name!r}")
        for repo in [*_as_list(data.base_model), *_as_list(data.datasets)]:
            validate_repo_id(repo)
    except (ValueError, HFValidationError) as exc:
        raise BadRunDir(f"{path}: model card metadata does not validate ({str(exc).splitlines()[0]})") from None
    return card


def _as_list(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _body(run: RunDir, meta: Mapping[str, Any]) -> list[str]:
    name = run.root.resolve().name
    scheme = meta.get("scheme", {})
    labels = scheme.get("labels", [])
    source = meta.get("model_source", "unknown")
    base = hub_id(source)
    ensemble = meta.get("kind") == "ensemble"
    lines = [f"# {name}: speech emotion recognition", "",
             f"A {len(labels)}-class speech emotion classifier (label scheme `{scheme.get('name', '?')}`) "
             + (f"made with [emovox](https://pypi.org/project/emovox/) as an ensemble of {len(meta['members'])} "
                f"models: {source}." if ensemble else
                "fine-tuned with [emovox](https://pypi.org/project/emovox/) from "
                + (f"[`{base}`](https://huggingface.co/{base})." if base else f"`{source}` (a local or randomly "
                   "initialised model, not a hub id).")), ""]
    lines += _results_section(meta)
    lines += ["## Labels", "", "| id | label |", "|---:|---|"] + [f"| {i} | {lab} |" for i, lab in enumerate(labels)]
    if scheme.get("composite"):
        lines += ["", "Labels are `EMOTION_INTENSITY` pairs; emovox also reports emotion and intensity alone."]
    lines += ["", *(_ensemble_section(meta) if ensemble else _training_section(meta)), *_adaptation_section(meta),
              *_data_section(meta),
              *_usage_section(run, meta), *_limitations(meta)]
    return lines


def _ensemble_section(meta: Mapping[str, Any]) -> list[str]:
    """What an ensemble is made of and how it combines them (``emovox ensemble``)."""
    fit = meta.get("temperature_fit")
    rows = [f"| {i} | `{m.get('model_source')}` | {m.get('model_type', '')} | {float(m.get('temperature', 1.0)):.3f} | "
            + (f"{m['evaluation']['test']['uar']:.4f}" if "uar" in m.get("evaluation", {}).get("test", {}) else "")
            + f" | `{m.get('source')}` |" for i, m in enumerate(meta.get("members", []), start=1)]
    how = ("1.0 (none fitted)" if not fit else f"1.0, not fitted: {fit['skipped']}" if "skipped" in fit else
           f"{float(meta.get('temperature', 1.0)):.3f}, fitted on {fit['clips']} clips of {fit['speakers']} "
           f"speaker(s) of the {fit['split']} split of `{fit['manifest']}` (NLL {fit['nll_before']:.3f} -> "
           f"{fit['nll_after']:.3f})")
    return ["## Ensemble", "", f"{len(rows)} models, each scoring the same input; their probabilities (each member "
            "calibrated by its own temperature) are averaged, and the average is divided by one temperature in the "
            f"log domain: {how}. The members are in `members/`.", "",
            "| # | base model | type | member temperature | member test UAR | trained as |", "|---:|---|---|---:|---:|---|",
            *rows, ""]


def _adaptation_section(meta: Mapping[str, Any]) -> list[str]:
    a = meta.get("adaptation")
    if not a:
        return []
    return ["## Adaptation", "",
            f"Adapted with `emovox adapt` from `{a.get('from_run')}`: {a.get('method')}, on {a.get('clips')} unlabelled "
            f"clips of the target ({', '.join(map(str, a.get('target', [])))}). The head and the encoder are the "
            "original run's; only the standardisation of the features it reads changed. Results on the source corpus "
            "are those of the original run, not of this one.", ""]


def _results_section(meta: Mapping[str, Any]) -> list[str]:
    evals = meta.get("evaluation", {})
    lines = ["## Results", ""]
    if not evals:
        lines += ["Not evaluated on a test split yet: `emovox evaluate RUN --manifest MANIFEST --out DIR` adds the "
                  "results here and to the metadata."]
    else:
        lines += ["| split | clips | accuracy | UAR | macro-F1 | majority-class accuracy |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {s} | {m.get('n', '')} | {m.get('accuracy', 0):.4f} | {m.get('uar', 0):.4f} | "
                  f"{m.get('macro_f1', 0):.4f} | {m.get('majority_accuracy', 0):.4f} |" for s, m in evals.items()]
        lines += ["", "UAR (unweighted average recall, balanced accuracy) and macro-F1 weigh every emotion equally; "
                  "accuracy alone rewards predicting the frequent classes."]
        lines += [f"\n**Warning ({s} split):** {w}." for s, m in evals.items() for w in m.get("group_warnings", [])]
    return lines + [""]


def _training_section(meta: Mapping[str, Any]) -> list[str]:
    cfg = meta.get("config", {})
    model, training, augment = cfg.get("model", {}), cfg.get("training", {}), cfg.get("augment", {})
    keys = ("learning_rate", "head_learning_rate", "per_device_train_batch_size", "num_train_epochs", "max_steps",
            "warmup_ratio", "weight_decay", "early_stopping_patience", "metric_for_best_model", "class_weighted_loss")
    recipe = [f"- base model: `{meta.get('model_source', '?')}`",
              f"- head: {model.get('pooling', 'mean')} pooling" + (", layer weighting" if model.get("layer_weighting") else "")
              + (", multi-task emotion + intensity" if model.get("multitask") else ""),
              "- frozen: " + (", ".join(x for x, on in (("feature encoder", model.get("freeze_feature_encoder")),
                                                        (f"first {model.get('freeze_layers')} layers", model.get("freeze_layers")),
                                                        ("whole backbone (linear probe)", model.get("freeze_backbone")))
                                        if on) or "nothing"),
              f"- clips cut to {meta.get('max_seconds', '?')} s; augmentation "
              + ("on (noise, pitch shift, time stretch)" if augment.get("enabled") else "off"),
              *[f"- `{k}`: {training[k]}" for k in keys if training.get(k) not in (None, False)],
              f"- trained {meta.get('global_step', '?')} steps in {meta.get('train_seconds', '?')} s, seed {meta.get('seed', '?')}; "
              f"best checkpoint by {training.get('metric_for_best_model', 'validation loss')}",
              f"- temperature {meta.get('temperature', 1.0):.3f} fitted on validation "
              + ("(folded into the classifier weights)" if meta.get("temperature_in_weights") else "(applied by emovox)")]
    env = meta.get("environment", {})
    recipe.append("- software: " + ", ".join(f"{k} {v}" for k, v in env.items() if k != "git_commit" and v))
    return ["## Training", "", *recipe, "", "The resolved configuration is `config.yaml`; `emovox.json` holds the label "
            "scheme, the manifest fingerprint and the package versions.", ""]


def _data_section(meta: Mapping[str, Any]) -> list[str]:
    data = meta.get("data", {})
    splits = data.get("splits", {})
    corpora = ", ".join(CORPUS_NAMES.get(c, c) for c in data.get("corpora", [])) or "unknown"
    lines = ["## Data and protocol", "", f"Corpus: {corpora} (manifest fingerprint `{meta.get('manifest_fingerprint', '?')}`).", ""]
    if splits:
        lines += ["| split | clips | speakers | hours |", "|---|---:|---:|---:|"]
        lines += [f"| {s} | {v['n']} | {v['speakers']} | {v['hours']:.2f} |" for s, v in splits.items()]
        lines.append("")
    leaked = data.get("leaked_speakers", {})
    if leaked:
        lines += [f"**Speakers appear in more than one split** ({', '.join(sorted(leaked))}): the results are "
                  "optimistic for unseen speakers.", ""]
    else:
        lines += ["Speaker-independent protocol: no speaker of the test split was seen in training or validation "
                  "(checked on the manifest), so the results estimate performance on new speakers.", ""]
    warnings = data.get("warnings", [])
    if warnings:
        lines += ["### Data report warnings", "", *[f"- {w}" for w in warnings], ""]
    return lines


def _usage_section(run: RunDir, meta: Mapping[str, Any]) -> list[str]:
    differs = pipeline_differences(run, meta)
    ref = meta.get("hub_repo") or "REPO_ID_OR_RUN_DIR"
    pipeline = ["```python", "from transformers import pipeline", "",
                f'classifier = pipeline("audio-classification", model="{ref}")',
                'print(classifier("clip.wav", top_k=3))', "```", ""]
    emovox = ["```bash", "pip install emovox",
              f"emovox predict {ref} clip.wav other.flac   # JSON lines: label, score, top_k",
              "```", "", "```python", "import emovox", "",
              f'predictor = emovox.Predictor.from_run_dir("{ref}")',
              'print(predictor.predict_files(["clip.wav"]))', "```", ""]
    lines = ["## How to use", ""]
    if differs == []:
        lines += ["A plain Transformers pipeline gives the same scores as emovox does:", "", *pipeline,
                  "Or with emovox:", "", *emovox]
    elif differs is None:
        what = "is an ensemble of several models" if meta.get("kind") == "ensemble" else "has an emovox head"
        lines += [f"This run {what} (not a stock Transformers class): load it with emovox.", "", *emovox]
    else:
        lines += ["Load it with emovox, which scores it as it was trained:", "", *emovox,
                  "A plain `transformers.pipeline(\"audio-classification\")` loads this folder too, but does not "
                  "give the same scores:", "", *[f"- {d}" for d in differs], ""]
    lines += ["Input: speech at any sample rate (resampled to 16 kHz mono). `emovox predict` scores recordings longer "
              "than the training length in overlapping windows.", ""]
    return lines


def _limitations(meta: Mapping[str, Any]) -> list[str]:
    return ["## Limitations", "",
            "- Trained on the corpus above only: acted or elicited emotion from a limited set of speakers, in the "
            "corpus's language and recording conditions; expect lower scores on spontaneous speech, other languages, "
            "accents, microphones and noise.",
            f"- Clips were cut to {meta.get('max_seconds', '?')} s in training; the label set is fixed.",
            "- Emotion labels are the corpus's categories, not a person's inner state. Do not use the scores for "
            "decisions about people (hiring, policing, health) without independent validation.",
            "- A corpus whose labels can be read from the sentence or the speaker (see the warnings above) can give "
            "scores that overstate what the model hears in the voice.", ""]


def card_datasets(run_dir: str | Path, datasets: Sequence[str]) -> None:
    """Name the hub datasets the run was trained on (kept in ``emovox.json``) and rewrite the card."""
    run = open_run(run_dir)
    update_meta(run, hub_datasets=list(datasets))
    write_model_card(run.root)


__all__ = ["CARD", "META", "card_datasets", "card_metadata", "data_summary", "hub_id", "load_card",
           "record_evaluation", "render_card", "write_model_card"]
