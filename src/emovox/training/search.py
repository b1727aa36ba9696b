"""Hyperparameter search with Optuna: seeded TPE maximising validation UAR, median pruning.

Each trial is one ``train`` run into ``out/trial-N`` (N = Optuna's trial number) with the
trial's values applied as ``section.key=value`` overrides on top of the config. A
:class:`PruningCallback` reports ``eval_uar`` at every evaluation, and a trial the
``MedianPruner`` stops is recorded as PRUNED while the study goes on.

The search space maps a config key to one distribution, e.g. in a YAML file for ``--space``::

    training.learning_rate: {log: [1.0e-5, 1.0e-3]}
    training.per_device_train_batch_size: {choice: [4, 8, 16]}
    model.hidden_dropout: {float: [0.0, 0.3]}

``augment.strength`` is the one derived key: it scales the config's noise amplitude, pitch range
and stretch range (1 = as configured) and is only drawn when augmentation is on.

Writes ``out/best.yaml`` (a full config ``emovox train --config`` accepts), ``out/trials.csv``
(number, state, value, params) and ``out/optimisation_history.png`` with its numbers in
``out/optimisation_history.csv``. The study lives in ``out/study.db`` (SQLite), so running the
same command again adds trials to it instead of starting over.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .runlock import holds_run_lock
from ..config import Config, load_config, read_yaml_mapping
from ..errors import BadConfig, EmovoxError

KINDS = ("log", "float", "int", "choice")
STRENGTH = "augment.strength"
METRIC = "eval_uar"
STUDY = "emovox-search"


@dataclass(frozen=True)
class Param:
    """One searched value: ``kind`` is log, float or int (``args`` = [low, high]) or choice."""

    kind: str
    args: tuple

    def suggest(self, trial, name: str) -> Any:
        """Draw this parameter's value for ``trial``."""
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.args))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.args[0]), int(self.args[1]))
        return trial.suggest_float(name, float(self.args[0]), float(self.args[1]), log=self.kind == "log")


@dataclass
class SearchResult:
    """The best trial and where the search wrote its files."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_config: Path
    best_run: Path
    states: dict[str, int]


def parse_space(raw: Mapping[str, Any], *, source: str = "search space") -> dict[str, Param]:
    """Turn ``{key: {kind: args}}`` into Params.

    Raises:
        BadConfig: a spec that is not one ``{kind: args}`` pair, an unknown kind, bad bounds.
    """
    space = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise BadConfig(f"{source}: {name}: expected one {{kind: args}} with kind one of "
                            f"{', '.join(KINDS)}; got {spec!r}")
        kind, args = next(iter(spec.items()))
        args = tuple(args) if isinstance(args, (list, tuple)) else (args,)
        if kind == "choice" and not args:
            raise BadConfig(f"{source}: {name}: choice needs at least one value")
        if kind != "choice" and (len(args) != 2 or not float(args[0]) <= float(args[1])
                                 or (kind == "log" and float(args[0]) <= 0)):
            raise BadConfig(f"{source}: {name}: {kind} needs [low, high] with low <= high (and low > 0 for log), "
                            f"got {list(args)}")
        space[str(name)] = Param(kind, args)
    return space


def load_space(path: str | Path) -> dict[str, Param]:
    """Read a search space YAML (``key: {kind: args}`` per line).

    Raises:
        BadConfig: missing or malformed file.
    """
    raw = read_yaml_mapping(path, what="search space file", expected="a mapping of config keys to {kind: args}")
    return parse_space(raw, source=str(path))


def model_config(name: str):
    """The Transformers config of a size preset, local directory, registry name or cached hub model
    (None when it cannot be read here)."""
    from ..models.presets import PRESETS

    try:
        if name in PRESETS:
            from transformers import Wav2Vec2Config

            return Wav2Vec2Config(**PRESETS[name])
        from transformers import AutoConfig

        from ..models.registry import resolve_model_name

        return AutoConfig.from_pretrained(resolve_model_name(name))
    except (OSError, ValueError, EmovoxError):
        return None


def default_space(cfg: Config) -> dict[str, Param]:
    """The levers that change what ``cfg`` trains, and only those.

    On cached frozen features (``model.freeze_backbone`` and ``model.cache_features``) only the
    head's settings count: its L2 penalty for the L-BFGS and ridge solvers (learning rate and batch
    size for AdamW), the poolings cached features support, and augmentation only when augmented
    copies are cached. Fine-tuning adds the model's own dropouts (those its config has), the
    frozen layers and attentive pooling. Stats pooling is left out where layer weighting is on
    (it reads every layer itself).
    """
    from ..config import DROPOUT_KEYS, ModelConfig

    m, solver = cfg.model, str(cfg.training.get("head_solver") or "adamw")
    cached = bool(m.freeze_backbone and m.cache_features)
    raw: dict[str, Any] = {}
    if cached and solver in ("lbfgs", "ridge"):
        raw["training.head_l2"] = {"log": [1e-3, 100.0]}
    else:
        raw["training.learning_rate"] = {"log": [1e-4, 1e-2] if m.freeze_backbone else [1e-5, 1e-3]}
        raw["training.per_device_train_batch_size"] = {"choice": [4, 8, 16]}
    if not cached or int(cfg.augment.feature_copies or 0) > 0:
        raw["augment.enabled"] = {"choice": [True, False]}
        raw[STRENGTH] = {"float": [0.25, 2.0]}
    config = model_config(m.name)
    if not m.freeze_backbone:
        raw.update({f"model.{k}": {"float": [0.0, 0.3]} for k in ("hidden_dropout", "final_dropout")
                    if k in DROPOUT_KEYS and config is not None and hasattr(config, k)})
        layers = int(getattr(config, "num_hidden_layers", 12) or 12) if config is not None else 12
        raw["model.freeze_layers"] = {"int": [0, max(0, layers - 1)]}
    poolings = ["mean", "stats"] if cached else ["mean", "attentive"]
    if m.layer_weighting:  # stats pooling reads every layer itself
        poolings = [p for p in poolings if p != "stats"]
    if len(poolings) > 1:
        raw["model.pooling"] = {"choice": poolings}
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return {k: p for k, p in parse_space(raw).items() if not k.startswith("model.") or k.split(".", 1)[1] in fields}


def strength_overrides(base: Config, strength: float) -> list[str]:
    """Overrides scaling the config's noise, pitch and stretch ranges by ``strength``."""
    a = base.augment
    noise_max = a.noise_max_amplitude * strength
    values = {
        "noise_max_amplitude": noise_max,
        "noise_min_amplitude": min(a.noise_min_amplitude, noise_max),
        "pitch_semitones": a.pitch_semitones * strength,
        "stretch_min_rate": max(0.1, 1.0 - (1.0 - a.stretch_min_rate) * strength),
        "stretch_max_rate": 1.0 + (a.stretch_max_rate - 1.0) * strength,
    }
    return [f"augment.{k}={json.dumps(float(v))}" for k, v in values.items()]


def params_to_overrides(params: Mapping[str, Any], base: Config) -> list[str]:
    """A trial's values as ``section.key=value`` overrides (``augment.strength`` expanded)."""
    out = []
    for name, value in params.items():
        out += strength_overrides(base, float(value)) if name == STRENGTH else [f"{name}={json.dumps(value)}"]
    return out


def suggest(trial, space: Mapping[str, Param]) -> dict[str, Any]:
    """Draw every parameter; ``augment.strength`` only when augmentation ends up enabled."""
    params = {name: p.suggest(trial, name) for name, p in space.items() if name != STRENGTH}
    if STRENGTH in space and params.get("augment.enabled", True):
        params[STRENGTH] = space[STRENGTH].suggest(trial, STRENGTH)
    return params


def _pruning_base():
    from transformers import TrainerCallback

    return TrainerCallback


class PruningCallback(_pruning_base()):
    """Reports ``eval_uar`` to an Optuna trial at each evaluation and stops a trial worth pruning.

    Raising ``optuna.TrialPruned`` out of ``Trainer.train`` ends the run; Optuna records the trial
    as PRUNED and the study continues. A step already reported (the final evaluation after
    training) is not reported twice.
    """

    def __init__(self, trial, metric: str = METRIC):
        self.trial = trial
        self.metric = metric
        self.reported: set[int] = set()

    def on_evaluate(self, args, state, control, metrics: dict[str, float] | None = None, **kwargs):
        import optuna

        value = (metrics or {}).get(self.metric)
        if value is None or state.global_step in self.reported:
            return
        self.reported.add(state.global_step)
        self.trial.report(float(value), step=state.global_step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric} {value:.4f} at step {state.global_step} is below the median")


def _check_space(config, overrides: Sequence[str], space: Mapping[str, Param], base: Config) -> None:
    """Fail early (BadConfig) on a space key or value the config rejects, before any training."""
    probe = {name: int(p.args[0]) if p.kind == "int" else p.args[0] for name, p in space.items()}
    load_config(config, [*overrides, *params_to_overrides(probe, base)])


@holds_run_lock("search")
def search(*, config: str | Path | None = None, manifest: str | Path | Sequence[str | Path], trials: int,
           out: str | Path,
           model: str | None = None, overrides: Sequence[str] = (), space: Mapping[str, Param] | None = None,
           seed: int = 0, timeout: float | None = None, pruner=None, progress: bool = True) -> SearchResult:
    """Tune the training recipe on the manifest's validation split.

    Args:
        config: Training config YAML (defaults when None).
        manifest: Manifest with train and validation splits (test is never looked at), or several
            (combined as ``train`` does).
        trials: Number of trials.
        out: Folder for ``trial-N`` runs, ``best.yaml``, ``trials.csv`` and the history plot.
        model: Model override, as for ``train``; also written into ``best.yaml``.
        overrides: Fixed ``section.key=value`` overrides applied to every trial.
        space: Parameters to search (default: :func:`default_space`).
        seed: Seed of the TPE sampler.
        timeout: Stop starting new trials after this many seconds.
        pruner: An Optuna pruner (default ``MedianPruner(n_startup_trials=3)``).
        progress: Print a line per trial to stderr.

    Raises:
        BadConfig: a bad space key or value; EmovoxError: no trial completed.
    """
    if trials < 1:
        raise BadConfig(f"--trials must be at least 1, got {trials}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the objective is validation UAR, so each trial keeps (and reports) its best-UAR checkpoint
    overrides = ["training.metric_for_best_model=eval_uar", *overrides]
    base = load_config(config, overrides)
    if model:
        base.model.name = model
    from .common import training_manifest

    manifest = training_manifest(manifest, out, base)  # several: combined into out/manifest.csv
    space = dict(space) if space is not None else default_space(base)
    _check_space(config, overrides, space, base)
    study = _study(out, seed, pruner)
    objective = _objective(config=config, manifest=manifest, out=out, model=model, overrides=overrides,
                           space=space, base=base)
    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[_printer] if progress else None)
    finally:
        table = trials_table(study)
        table.to_csv(out / "trials.csv", index=False)
        plot_history(table, out / "optimisation_history")
    return _best(study, table, out, config, overrides, base)


def _study(out: Path, seed: int, pruner):
    """The study, stored in ``out/study.db`` so a rerun into the same folder continues it.

    The sampler's seed is offset by the trials already run, so a continued study does not
    replay the same random start-up points.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is printed by _printer, one line
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    done = 0
    if (out / "study.db").exists():
        done = len(optuna.load_study(study_name=STUDY, storage=storage).trials)
    return optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True, direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=seed + done),
                               pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=3))


def _objective(*, config, manifest, out: Path, model, overrides, space, base: Config):
    from .train import train

    def objective(trial) -> float:
        import optuna

        params = suggest(trial, space)
        run = out / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run))
        try:
            cfg = load_config(config, [*overrides, *params_to_overrides(params, base)])
            if model:
                cfg.model.name = model
            res = train(config=cfg, manifest=manifest, out=run, progress=False, callbacks=[PruningCallback(trial)])
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a failed trial is a result: recorded, and the search goes on
            trial.set_user_attr("error", one_line(exc))
            return float("nan")
        return float(res.metrics[METRIC])

    return objective


def one_line(exc: BaseException) -> str:
    """An exception as one line: emovox errors as they read, others with their type."""
    text = (str(exc).splitlines() or [""])[0][:300]
    return text if isinstance(exc, EmovoxError) else f"{type(exc).__name__}: {text}"


def _printer(study, trial) -> None:
    value = "" if trial.value is None else f" {METRIC} {trial.value:.4f}"
    shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    error = trial.user_attrs.get("error")
    state = f"failed: {error}" if error else trial.state.name.lower()
    print(f"trial {trial.number}: {state}{value if not error else ''} ({shown})", file=sys.stderr, flush=True)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def trials_table(study) -> pd.DataFrame:
    """One row per trial: number, state, value, best value so far, the last reported value and
    its step (what a pruned trial reached), then one column per parameter."""
    rows, best = [], None
    for t in study.trials:
        if t.value is not None and t.state.name == "COMPLETE":
            best = t.value if best is None else max(best, t.value)
        last = t.last_step
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "best_value": best,
                     "last_step": last, "last_reported": None if last is None else t.intermediate_values[last],
                     "error": t.user_attrs.get("error", ""), **t.params})
    return pd.DataFrame(rows, columns=None if rows else ["number", "state", "value", "best_value", "last_step",
                                                         "last_reported", "error"])


def plot_history(table: pd.DataFrame, out_stem: Path) -> list[Path]:
    """Validation UAR per trial (pruned trials at their last report) and the best so far.

    Writes ``{out_stem}.png`` and, beside it, the plotted numbers as ``{out_stem}.csv``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    table = table.assign(value=pd.to_numeric(table["value"], errors="coerce").fillna(
        pd.to_numeric(table["last_reported"], errors="coerce")))
    table[["number", "state", "value", "best_value"]].to_csv(out_stem.with_suffix(".csv"), index=False)
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        part = table[table["state"] == state]
        ax.scatter(part["number"], part["value"], marker=marker, label=state.lower())
    ax.step(table["number"], table["best_value"], where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel="validation UAR", title="optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    fig.savefig(out_stem.with_suffix(".png"), dpi=100)
    plt.close(fig)
    return [out_stem.with_suffix(".png"), out_stem.with_suffix(".csv")]


def _best(study, table: pd.DataFrame, out: Path, config, overrides: Sequence[str], base: Config) -> SearchResult:
    """Write best.yaml: the base config with the best trial's values (and the model) applied."""
    states = table["state"].value_counts().to_dict()
    try:
        best = study.best_trial
    except ValueError:
        errors = sorted({e for e in table.get("error", pd.Series(dtype=str)).fillna("") if e})
        why = f"; failures: {' | '.join(errors[:3])}" if errors else ""
        raise EmovoxError(f"no trial completed ({states}); see {out / 'trials.csv'}{why}") from None
    cfg = load_config(config, [*overrides, *params_to_overrides(best.params, base)])
    cfg.model.name = base.model.name
    cfg.save(out / "best.yaml")
    return SearchResult(best_params=dict(best.params), best_value=float(best.value), best_trial=best.number,
                        best_config=out / "best.yaml", best_run=Path(best.user_attrs["run_dir"]),
                        states={str(k): int(v) for k, v in states.items()})
