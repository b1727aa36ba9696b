"""The ``emovox`` command: each command parses its options and makes one library call."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .cli_common import csv_list, say, split_models, app
from .cli_setup import demo_data_cmd, import_ct2_cmd, init_model_cmd  # registered on app by their decorators
from .errors import EmovoxError, InvalidCorpus, user_error_line

__all__ = ["app", "main", "demo_data_cmd", "import_ct2_cmd", "init_model_cmd"]

FOLD_SPEAKERS_HELP = ("Folds as a protocol gives them: each fold's test speakers, folds apart by ';' "
                      "('1,2,3,4;5,6,7,8;...'), a file (JSON lists, CSV speaker,fold, one fold per line), or "
                      "'emobox' (EmoBox's published speaker folds for RAVDESS and EMOVO).")
FOLD_BY_HELP = "One fold per value of this manifest column (session; speaker: leave one speaker out)."


@app.command()
def prepare(
    corpus: str = typer.Option(..., help="crema-d, ravdess, emovo, emodb, iemocap, csv, folders or hf (a Hugging Face "
                                         "datasets folder)."),
    root: Path = typer.Option(..., help="Corpus folder (for csv: a CSV file or a folder of split CSVs; for hf: a "
                                        "save_to_disk folder, Parquet files or an audiofolder)."),
    out: Path = typer.Option(..., help="Output folder for manifest.csv and the data report."),
    scheme: Optional[str] = typer.Option(None, help="Label scheme name or comma-separated labels."),
    seed: int = typer.Option(0, help="Seed for the splits."),
    test_speakers: Optional[str] = typer.Option(None, help="Comma-separated speakers pinned to test."),
    drop_invalid: bool = typer.Option(False, help="Keep the good files and list the bad ones in invalid.csv."),
    workers: Optional[int] = typer.Option(None, help="Parallel decoding processes (default: all cores)."),
    hf_label: Optional[str] = typer.Option(None, help="hf: label column (default: a ClassLabel or label/emotion)."),
    hf_speaker: Optional[str] = typer.Option(None, help="hf: speaker column (default: speaker, speaker_id, actor, "
                                             "client_id, ...)."),
    hf_split: Optional[str] = typer.Option(None, help="hf: emovox split = dataset split, e.g. "
                                           "train=train,validation=dev,test=test (default: the dataset's names)."),
    canonical: bool = typer.Option(False, help="Rename labels into the canonical emotion names (ANG, anger, Wut, "
                                   "rab -> angry; see README, Label vocabulary)."),
    label_map: Optional[str] = typer.Option(None, help="Explicit renames, applied first: gio=happy,rab=angry,... or "
                                            "a CSV file with two columns (from,to)."),
    unmapped: str = typer.Option("error", help="error: refuse labels the mapping cannot name (or outside --scheme), "
                                 "listing them; drop: drop those clips (listed in the data report)."),
    path_pattern: Optional[str] = typer.Option(None, help="folders/csv: a regular expression searched in each file's "
                                               "path under --root; its named groups fill speaker, label (folders), "
                                               "gender, sentence, intensity, e.g. '^[^/]+/(?P<speaker>[^/]+)/'."),
) -> None:
    """Validate a corpus and write a manifest with speaker-independent splits and a data report."""
    from .data.prepare import prepare as run

    res = run(corpus=corpus, root=root, out=out, scheme=scheme, seed=seed, drop_invalid=drop_invalid,
              test_speakers=csv_list(test_speakers), workers=workers, progress=sys.stderr.isatty(),
              hf_label=hf_label, hf_speaker=hf_speaker, hf_split=hf_split, canonical=canonical,
              label_map=label_map, unmapped=unmapped, path_pattern=path_pattern)
    shown, said = res.summary_lines(out)
    for line in said:
        say(line)
    typer.echo("\n".join(shown))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, help="YAML config (configs/*.yaml); defaults otherwise."),
    manifest: List[Path] = typer.Option(..., help="manifest.csv from `emovox prepare`; repeat to train on several "
                                        "corpora (each keeps its splits and speakers)."),
    out: Path = typer.Option(..., help="Run directory to create."),
    model: Optional[str] = typer.Option(None, help="Hub id, local model dir, or size tiny|small|base."),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in --out."),
) -> None:
    """Fine-tune on the train split, early-stopped on validation. Extra args: section.key=value."""
    from .config import load_config
    from .data.manifest import load_manifest

    for m in manifest:  # a missing manifest is said at once, before torch loads
        load_manifest(m)
    cfg = load_config(config, list(ctx.args))
    from .training.train import train as run

    res = run(config=cfg, manifest=manifest, out=out, model=model, resume=resume, progress=True)
    if not res.primary:  # another rank of a data-parallel launch: rank 0 reports
        return
    shown = ", ".join(f"{k[5:]} {v:.4f}" for k, v in res.metrics.items()
                      if k in ("eval_loss", "eval_accuracy", "eval_uar", "eval_macro_f1"))
    typer.echo(f"trained {res.steps} steps; validation: {shown}")
    typer.echo(f"run dir: {res.run_dir} (best checkpoint: {res.best_checkpoint})")


@app.command()
def evaluate(
    runs: List[str] = typer.Argument(..., help="Model(s): run dirs, save_pretrained folders or hub ids; "
                                                "several are scored as an ensemble."),
    manifest: Path = typer.Option(..., help="Manifest to score."),
    out: Path = typer.Option(..., help="Report folder."),
    split: str = typer.Option("test", help="train, validation or test."),
    backend: str = typer.Option("auto", help="auto (onnx for an exported dir), torch or onnx."),
    compare: bool = typer.Option(False, help="Score several runs separately, side by side (not as an ensemble)."),
    allow_pickle: bool = typer.Option(False, help="Also load pickled .bin/.pt weights (they can run code: trusted folders only)."),
    all_labels: bool = typer.Option(False, help="Score among all the model's labels even when the manifest has only "
                                    "some of them (default: restricted to the manifest's labels, as cross-corpus "
                                    "evaluation does)."),
    adapt: Optional[str] = typer.Option(None, help="speaker: re-estimate a frozen-feature run's standardisation per "
                                        "test speaker from their unlabelled clips (transductive, reported apart)."),
    by: Optional[List[str]] = typer.Option(None, help="Manifest column (gender, age, speaker, ...) to report per group."),
    target_accuracy: Optional[float] = typer.Option(None, help="Find the --min-confidence that reaches this accuracy."),
    gap_warning: float = typer.Option(0.05, help="Warn when the UAR gap between groups exceeds this."),
) -> None:
    """Accuracy, UAR, macro-F1, confusion matrix, calibration, accuracy-coverage and error analysis for a split."""
    if adapt not in (None, "speaker"):
        raise typer.BadParameter(f"--adapt {adapt!r}: the one adaptation at evaluation is 'speaker'")
    if adapt:
        if len(runs) != 1:
            raise typer.BadParameter("--adapt speaker scores one run dir, not an ensemble")
        from .training.adapt import evaluate_speaker_adapted

        m = evaluate_speaker_adapted(run=runs[0], manifest=manifest, out=out, split=split, all_labels=all_labels,
                                     progress=sys.stderr.isatty())
    else:
        from .evaluation.evaluate import evaluate as run

        m = run(runs=runs, manifest=manifest, out=out, split=split, backend=backend, compare=compare,
                progress=sys.stderr.isatty(), allow_pickle=allow_pickle, all_labels=all_labels, by=by or (),
                target_accuracy=target_accuracy, gap_warning=gap_warning)
    from .evaluation.evaluate import result_lines
    shown, said = result_lines(m, split=split, out=out)
    typer.echo("\n".join(shown))
    for line in said:
        say(line)


@app.command("stress")
def stress_cmd(
    models: List[str] = typer.Argument(..., help="Model(s), as evaluate takes them (several: an ensemble)."),
    manifest: Path = typer.Option(..., help="Manifest to score."),
    out: Path = typer.Option(..., help="Report folder (stress.json, stress.csv, stress.png, report.md)."),
    split: str = typer.Option("test", help="train, validation or test."),
    conditions: Optional[str] = typer.Option(None, help="Comma-separated families (white, babble, reverb, telephone, "
                                             "mp3, ...) or names (white-5dB, reverb-0.6s, mp3-16k); default: all."),
    seed: int = typer.Option(0, help="Seed of every random degradation."),
    backend: str = typer.Option("auto", help="auto (onnx for an exported dir), torch or onnx."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: all cores)."),
    allow_pickle: bool = typer.Option(False, help="Also load pickled .bin/.pt weights (they can run code: trusted folders only)."),
    by: Optional[List[str]] = typer.Option(None, help="Manifest column (gender, speaker, ...): UAR per group too."),
) -> None:
    """Re-score a split under noise, babble, reverberation, telephone band, codecs, gain, clipping and resampling."""
    from .evaluation.stress import stress as run
    from .evaluation.stress_report import summary_lines

    r = run(model=models, manifest=manifest, out=out, split=split, conditions=conditions, seed=seed, backend=backend,
            threads=threads, progress=sys.stderr.isatty(), allow_pickle=allow_pickle, by=by or ())
    typer.echo("\n".join(summary_lines(r, out)))


@app.command()
def predict(
    items: List[str] = typer.Argument(..., help="MODEL [MODEL ...] PATH [PATH ...]: models, then files/folders/manifests."),
    format: str = typer.Option("jsonl", "--format", help="jsonl, csv or parquet (parquet needs --out)."),
    out: Optional[Path] = typer.Option(None, help="Write here instead of standard output."),
    backend: str = typer.Option("auto", help="auto (onnx for an exported dir), torch or onnx."),
    top_k: int = typer.Option(3, help="How many labels to list per file."),
    windows: bool = typer.Option(False, help="Also one row per window for long files."),
    window_seconds: Optional[float] = typer.Option(None, help="Longer files are scored in windows of this length "
                                                   "(default: the larger of 10 s and the training length)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: all cores; with --ray: per actor)."),
    allow_pickle: bool = typer.Option(False, help="Also load pickled .bin/.pt weights (they can run code: trusted folders only)."),
    ray: bool = typer.Option(False, "--ray", help="Score on a Ray cluster: --ray-address, else $RAY_ADDRESS, "
                             "else a local one started for this run."),
    ray_address: Optional[str] = typer.Option(None, help="With --ray: the cluster to join (auto, HOST:PORT, ray://...)."),
    num_actors: int = typer.Option(1, help="With --ray: actors in the pool (one model load each)."),
    cpus_per_actor: float = typer.Option(1.0, help="With --ray: CPUs reserved per actor."),
    gpus_per_actor: float = typer.Option(0.0, help="With --ray: GPUs reserved per actor."),
    segment: Optional[str] = typer.Option(None, help="windows (as --windows) or vad: one row per speech segment "
                                          "(start, end, label, ...) and a summary row per file; silence is not scored."),
    speakers: Optional[str] = typer.Option(None, help="With --segment vad: N or auto (S1, S2, ... in order of first "
                                           "appearance, a summary row each), or channels (channel n is Sn)."),
    min_speech: float = typer.Option(0.25, help="With --segment vad: shorter speech bursts are dropped (seconds)."),
    min_silence: float = typer.Option(0.25, help="With --segment vad: shorter pauses do not end a segment (seconds)."),
    max_segment: float = typer.Option(15.0, help="With --segment vad: longer speech is cut at its quietest point."),
    vad_threshold: float = typer.Option(0.5, help="With --segment vad: speech probability that counts as speech."),
    segment_margin: float = typer.Option(0.5, help="With --segment vad: seconds of silence framing each segment when "
                                         "it is scored, as utterances are recorded (0: the bare segment)."),
    rttm: Optional[Path] = typer.Option(None, help="With --segment vad: also write the turns as RTTM (emotion in "
                                        "the orthography field, its probability as the confidence)."),
    plot: Optional[Path] = typer.Option(None, help="With --segment vad: a folder for one timeline PNG (+ CSV) per "
                                        "file: a lane per speaker, coloured by emotion, confidence as opacity."),
    min_confidence: Optional[float] = typer.Option(None, help="Under this top score: label null, abstained true."),
) -> None:
    """Score files; a file that cannot be scored gets an error row and the exit code is 1."""
    from .inference.output import write_rows

    runs, inputs = split_models(items, "the files or folders to score")
    common = dict(runs=runs, inputs=inputs, backend=backend, top_k=top_k, windows=windows, threads=threads,
                  window_seconds=window_seconds, allow_pickle=allow_pickle, progress=sys.stderr.isatty(),
                  min_confidence=min_confidence)
    if segment is not None or speakers is not None or rttm or plot:
        if ray:
            raise typer.BadParameter("--segment/--speakers/--rttm/--plot run in-process; drop --ray")
        from .inference.predict import predict as run
        from .inference.vad import VadOptions

        vad = VadOptions(threshold=vad_threshold, min_speech=min_speech, min_silence=min_silence, max_segment=max_segment)
        rows = run(**common, segment=segment, speakers=speakers, vad=vad, segment_margin=segment_margin, rttm=rttm, plot=plot)
    elif ray:
        from .inference.ray_predict import predict_ray

        rows = predict_ray(**common, address=ray_address, num_actors=num_actors, cpus_per_actor=cpus_per_actor,
                           gpus_per_actor=gpus_per_actor)
    else:
        from .inference.predict import predict as run

        rows = run(**common)
    failed = write_rows(rows, out=out, fmt=format, segmented=segment == "vad")
    for path, error in failed:
        say(f"failed: {path}: {error}")
    if failed:
        raise typer.Exit(1)


@app.command()
def export(
    run: str = typer.Argument(..., help="Model to export: a run dir, a save_pretrained folder or a hub id."),
    out: Path = typer.Option(..., help="Folder for model.onnx and its configs."),
    int8: bool = typer.Option(False, help="Dynamic int8 quantization."),
    int8_encoder: bool = typer.Option(False, help="With --int8, also quantise the convolutional feature encoder "
                                                  "(exported as MatMuls): ~1.3x faster, more top-1 flips on near-ties."),
    allow_pickle: bool = typer.Option(False, help="Also load pickled .bin/.pt weights (they can run code: trusted folders only)."),
    conversation: bool = typer.Option(False, help="Also bundle the speech detector and speaker encoder (ONNX): --segment vad --speakers without torch."),
) -> None:
    """ONNX export (dynamic time axis), optional int8, with a parity check against torch."""
    from .inference.export import cpu_int8_note, export_onnx

    r = export_onnx(run_dir=run, out=out, int8=int8, int8_encoder=int8_encoder, allow_pickle=allow_pickle, conversation=conversation)
    typer.echo(f"wrote {r.onnx_path}{' and ' + str(out / 'conversation') if conversation else ''}; parity vs torch on {r.n_checked} "
               f"clips: max prob diff {r.max_prob_diff:.2e}, top-1 agreement {r.top1_agreement:.1%}")
    if int8 and (note := cpu_int8_note()):
        typer.echo(f"note: {note}")


@app.command()
def ensemble(
    runs: List[str] = typer.Argument(..., help="Two or more run dirs (seeds, folds, encoders), e.g. CV/fold-*/run."),
    out: Path = typer.Option(..., help="The ensemble run dir to create."),
    manifest: Optional[Path] = typer.Option(None, help="Fit the temperature on this manifest's validation split."),
) -> None:
    """Save several models as one run dir (averaged probabilities, one temperature) for predict, evaluate, serve, export."""
    from .training.ensemble_build import build_ensemble, summary_line

    typer.echo(summary_line(build_ensemble(runs=runs, out=out, manifest=manifest, progress=sys.stderr.isatty())))


@app.command("serve")
def serve_cmd(
    models: List[str] = typer.Argument(..., help="Model(s): run dirs, ONNX exports, save_pretrained folders or hub ids."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port to listen on (0 picks a free one)."),
    backend: str = typer.Option("auto", help="auto (onnx for an exported dir), torch or onnx."),
    workers: int = typer.Option(2, help="Scoring threads; further requests wait their turn."),
    threads: Optional[int] = typer.Option(None, help="CPU threads per model call (default: cores / workers)."),
    max_upload_mb: float = typer.Option(25.0, help="Largest request body, in MB (413 past it)."),
    max_seconds: float = typer.Option(600.0, help="Longest recording scored, in seconds (413 past it)."),
    api_key_env: Optional[str] = typer.Option(None, help="Environment variable holding the API key clients must "
                                              "send (Authorization: Bearer KEY or X-API-Key)."),
    top_k: int = typer.Option(3, help="Labels listed per file unless a request asks for top_k."),
    allow_pickle: bool = typer.Option(False, help="Also load pickled .bin/.pt weights (they can run code: trusted folders only)."),
    body_timeout: float = typer.Option(15.0, help="Seconds an upload may stall before it is cut off (408)."),
    min_confidence: Optional[float] = typer.Option(None, help="Under this top score: label null, abstained true."),
) -> None:
    """HTTP API (POST /v1/predict, docs at /docs) and a web page at / around the predictor."""
    from .inference.serve import serve as run

    run(models=models, host=host, port=port, backend=backend, workers=workers, threads=threads,
        max_upload_mb=max_upload_mb, max_seconds=max_seconds, api_key_env=api_key_env, top_k=top_k,
        allow_pickle=allow_pickle, body_timeout=body_timeout, min_confidence=min_confidence)


@app.command("pseudo-label")
def pseudo_label_cmd(
    items: List[str] = typer.Argument(..., help="RUN [RUN ...] UNLABELLED_DIR [...]"),
    out: Path = typer.Option(..., help="Folder for the pseudo-label manifest."),
    min_confidence: float = typer.Option(0.9, help="Keep predictions at least this confident."),
) -> None:
    """Confident predictions on unlabelled audio as a manifest that `train` can mix in
    (data.extra_train=[OUT/manifest.csv])."""
    from .training.pseudo_label import pseudo_label

    runs, inputs = split_models(items, "the unlabelled folders or files")
    r = pseudo_label(runs=runs, inputs=inputs, out=out, min_confidence=min_confidence, progress=sys.stderr.isatty())
    typer.echo(f"kept {r.kept} of {r.scored} scored files (>= {min_confidence}); {r.failed} failed; manifest: {r.manifest}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def cv(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, help="YAML config (configs/*.yaml); defaults otherwise."),
    manifest: List[Path] = typer.Option(..., help="Manifest (split column unused but by --confirm); repeat per corpus."),
    folds: Optional[int] = typer.Option(None, help="Number of seeded speaker-grouped folds (default 5)."),
    out: Path = typer.Option(..., help="Folder for fold-K/ runs and cv_metrics.json."),
    fold_speakers: Optional[str] = typer.Option(None, help=FOLD_SPEAKERS_HELP),
    fold_by: Optional[str] = typer.Option(None, help=FOLD_BY_HELP),
    model: Optional[str] = typer.Option(None, help="Hub id, local model dir, or size tiny|small|base."),
    seed: int = typer.Option(0, help="Seed of the fold and validation-speaker assignment."),
    confirm: bool = typer.Option(False, help="Keep the test split's speakers out of every fold; then train once on "
                                 "train + validation and score them (choose on the folds, confirm on these)."),
    baseline: bool = typer.Option(False, help="Also score the eGeMAPS baseline on exactly these folds, reported "
                                  "beside the recipe with chance (out/egemaps)."),
) -> None:
    """Speaker-grouped K-fold cross-validation: mean ± std of UAR and friends. Extra args: section.key=value."""
    from .training.cv import cross_validate

    typer.echo("\n".join(cross_validate(config=config, manifest=manifest, folds=folds, out=out, model=model, seed=seed,
                                        fold_speakers=fold_speakers, fold_by=fold_by, overrides=list(ctx.args),
                                        confirm=confirm, baseline=baseline, progress=True).summary_lines()))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def search(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, help="YAML config (configs/*.yaml); defaults otherwise."),
    manifest: List[Path] = typer.Option(..., help="Manifest with train and validation splits; repeat for several "
                                        "corpora."),
    trials: int = typer.Option(20, help="Number of Optuna trials."),
    out: Path = typer.Option(..., help="Folder for trial-N/ runs, best.yaml, trials.csv and the history plot."),
    model: Optional[str] = typer.Option(None, help="Hub id, local model dir, or size tiny|small|base."),
    space: Optional[Path] = typer.Option(None, help="Search space YAML (key: {log|float|int|choice: [...]}); "
                                         "default: lr, batch size, augmentation, dropout, frozen layers, head."),
    seed: int = typer.Option(0, help="Seed of the TPE sampler."),
    timeout: Optional[float] = typer.Option(None, help="Start no new trial after this many seconds."),
) -> None:
    """Optuna TPE search maximising validation UAR, with median pruning. Extra args: section.key=value."""
    from .training.search import load_space, search as run

    res = run(config=config, manifest=manifest, trials=trials, out=out, model=model, overrides=list(ctx.args),
              space=load_space(space) if space else None, seed=seed, timeout=timeout, progress=True)
    typer.echo(f"best: trial {res.best_trial}, validation UAR {res.best_value:.4f}; trials: {res.states}")
    typer.echo(f"config: {res.best_config} (emovox train --config {res.best_config} ...); run: {res.best_run}")


@app.command()
def adapt(
    run: Path = typer.Argument(..., help="Run dir trained on cached frozen features (e.g. configs/whisper-probe.yaml)."),
    targets: List[str] = typer.Argument(..., help="Unlabelled audio of the target domain: files, folders or "
                                        "manifests/CSV lists (labels ignored)."),
    out: Path = typer.Option(..., help="The adapted run dir to write (a new folder)."),
) -> None:
    """Re-estimate the run's feature standardisation on unlabelled target audio: a new run dir for that domain."""
    from .training.adapt import adapt as run_adapt

    res = run_adapt(run=run, targets=targets, out=out, progress=sys.stderr.isatty())
    typer.echo(f"adapted on {res.clips} target clip(s)" + (f" ({len(res.skipped)} skipped)" if res.skipped else ""))
    typer.echo(f"run dir: {res.run_dir}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def matrix(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, help="YAML config (configs/*.yaml); defaults otherwise."),
    manifest: List[Path] = typer.Option(..., help="A prepared manifest per corpus; repeat (two or more)."),
    out: Path = typer.Option(..., help="Folder for the runs, matrix.csv/.json/.png and report.md."),
    model: Optional[str] = typer.Option(None, help="Hub id, local model dir, registry name or size."),
    all_labels: bool = typer.Option(False, help="Keep every corpus's own labels (default: only those all share)."),
) -> None:
    """Cross-corpus grid: train on each corpus (and on all but one), score every corpus. Extra args: section.key=value."""
    from .training.matrix import matrix as run

    res = run(config=config, manifests=manifest, out=out, model=model, overrides=list(ctx.args),
              shared_labels=not all_labels, progress=True)
    typer.echo(res.uar.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"grid: {res.csv}  heatmap: {res.png}  report: {res.report}")


@app.command()
def baseline(
    manifest: Path = typer.Option(..., help="manifest.csv from `emovox prepare`."),
    out: Path = typer.Option(..., help="Report folder (features.csv there is reused as a cache)."),
    split: str = typer.Option("test", help="Split to report on (train on train, C chosen on validation)."),
    speaker_norm: bool = typer.Option(False, help="Z-score every feature within each speaker first."),
    folds: Optional[int] = typer.Option(None, help="Speaker-grouped K-fold CV instead of the manifest's splits."),
    fold_speakers: Optional[str] = typer.Option(None, help=FOLD_SPEAKERS_HELP),
    fold_by: Optional[str] = typer.Option(None, help=FOLD_BY_HELP),
    seed: int = typer.Option(0, help="Seed of the folds (same folds as `emovox cv`)."),
    workers: Optional[int] = typer.Option(None, help="Parallel feature extraction processes (default: all cores)."),
    confirm: bool = typer.Option(False, help="With --folds: as `emovox cv --confirm` (test speakers held out, scored last)."),
) -> None:
    """eGeMAPS v02 functionals (openSMILE) + balanced logistic regression: the number to beat."""
    from .evaluation.baseline import cross_validate_baseline, run_baseline

    kw = dict(manifest=manifest, out=out, speaker_norm=speaker_norm, workers=workers, progress=sys.stderr.isatty())
    if folds or fold_speakers or fold_by:
        typer.echo("\n".join(cross_validate_baseline(**kw, folds=folds, fold_speakers=fold_speakers, fold_by=fold_by,
                                                      seed=seed, confirm=confirm).summary_lines()))
        return
    m = run_baseline(**kw, split=split)
    typer.echo(f"{split}: n={m['n']} accuracy {m['accuracy']:.4f}  UAR {m['uar']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
               f"(majority baseline accuracy {m['majority_accuracy']:.4f})\nreport: {out / 'report.md'}")


@app.command()
def push(
    run: Path = typer.Argument(..., help="Run dir to upload (its checkpoints stay behind)."),
    repo_id: str = typer.Option(..., help="Hub model repo, owner/name (created when missing)."),
    private: bool = typer.Option(False, help="Create the repo as private."),
    token: Optional[str] = typer.Option(None, help="Hub token (default: HF_TOKEN or the stored login)."),
    dataset: Optional[List[str]] = typer.Option(None, help="Hub dataset id the run was trained on (repeatable)."),
) -> None:
    """Upload a run dir and its model card to the Hugging Face Hub (needs a reachable hub)."""
    from .hub import push as run_push

    typer.echo(f"pushed: {run_push(run=run, repo_id=repo_id, private=private, token=token, datasets=dataset or ())}")


class _NoteHandler(logging.Handler):
    """Library notes (``logging.getLogger("emovox")``) as one ``note:`` line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        say(f"note: {record.getMessage()}")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: user errors become one line each and exit code 2, never a traceback."""
    log = logging.getLogger("emovox")
    if not any(isinstance(h, _NoteHandler) for h in log.handlers):
        log.addHandler(_NoteHandler(logging.INFO))
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except (EmovoxError, OSError) as exc:  # an OSError naming a path is the user's too (--out is a file, ...)
        for path, reason in exc.problems if isinstance(exc, InvalidCorpus) else ():
            say(f"invalid: {path}: {reason}")
        return say(f"error: {user_error_line(exc)}") or 2
    except ModuleNotFoundError as exc:  # the runtime install has no training stack: one line, no traceback
        return say(f"error: this needs {exc.name}, which the runtime install leaves out: pip install 'emovox[train]'") or 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        say("aborted")
        return 130
    except Exception as exc:  # usage errors from typer's click: shown as click shows them
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
