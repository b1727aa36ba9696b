"""Several trained models as one: an ensemble run dir, loaded as one torch module.

Seeds, cross-validation folds or encoders (e.g. whisper-tiny.en and whisper-base probes) saved
together are one model for every command that scores audio: ``predict``, ``evaluate``, ``serve``,
``stress`` and ``export`` (one ONNX graph) load it through :func:`~emovox.models.loading.load_trained`
like any run dir, with no code of their own for it.

Layout (``emovox ensemble RUN1 RUN2 ... --out ENS``)::

    ENS/emovox.json               kind "ensemble", the members, the scheme, one temperature
    ENS/config.json               one member's config (labels, model type: the family commands ask)
    ENS/preprocessor_config.json  the front end every member shares
    ENS/members/NN-NAME/          each member's model files as it saved them (checkpoints left out)
    ENS/README.md                 the model card

The module's logits are ``log(mean_i softmax(z_i / T_i))``: the log of the members' averaged
probabilities, each member calibrated by its own temperature ``T_i`` (so ``softmax`` of them is
exactly the average ``emovox predict RUN1 RUN2 ...`` gives). The ensemble's own temperature,
fitted on the validation speakers' clips of those averaged probabilities, sits in ``emovox.json``
and is applied as any run's is.

One front end: the members must take the same input (input name, attention mask, and the same
features for the same wave, e.g. whisper-tiny.en and whisper-base: both 80-bin log-mel, or two
wav2vec2 runs with the same normalisation). Members that need different inputs (a wav2vec2 and a
Whisper run, another silence trimming) are refused in one line: the one exported graph takes one
input, and featurizing is the predictor's step, outside the model. Score such models side by side
with ``emovox predict RUN1 RUN2 ...`` (each featurizes its own input) instead.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BadRunDir
from ..rundir import META

KIND = "ensemble"
MEMBERS_DIR = "members"
ROOT_FILES = ("config.json", "preprocessor_config.json")
SKIPPED = ("checkpoint-*", "tensorboard", "runs", "*.png", "train_log.jsonl", "README.md")
PROBE_SECONDS = ((0.4, 1.1, 0.3), (0.0, 2.3, 0.6))  # (leading silence, sound, trailing silence): trimming shows


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble run dir (its ``emovox.json`` says ``kind: ensemble``)."""
    meta = Path(path) / META
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("kind") == KIND
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False  # a malformed emovox.json is open_source's to report


def member_dirs(path: str | Path) -> list[Path]:
    """The member folders of an ensemble run dir, in order.

    Raises:
        BadRunDir: the member list is malformed or a member folder is missing.
    """
    root = Path(path)
    members = json.loads((root / META).read_text()).get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) and "path" in m for m in members):
        raise BadRunDir(f"{root / META}: kind ensemble without a member list; rebuild it with `emovox ensemble`")
    dirs = [root / str(m["path"]) for m in members]
    for d in dirs:
        if not d.resolve().is_relative_to(root.resolve()) or not (d / "config.json").is_file():
            raise BadRunDir(f"{root}: ensemble member {d} is missing (an ONNX export of an ensemble runs with "
                            "--backend onnx; rebuild the ensemble with `emovox ensemble`)")
    return dirs


def load_ensemble(path: str | Path, *, allow_pickle: bool = False):
    """The ensemble as one module (eval mode) whose logits are the log of the members' averaged
    calibrated probabilities.

    Raises:
        BadRunDir: a member is missing or does not load.
    """
    from transformers import AutoConfig

    from .loading import load_trained
    from .source import open_source

    dirs = member_dirs(path)
    models = [load_trained(d, allow_pickle=allow_pickle) for d in dirs]
    temperatures = [open_source(d).temperature for d in dirs]
    return ensemble_module(models, temperatures, AutoConfig.from_pretrained(str(path)))


def ensemble_module(models: Sequence[Any], temperatures: Sequence[float], config: Any):
    """Wrap loaded classifiers as one module (see the module docstring for what it computes)."""
    import math

    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class EnsembleForAudioClassification(torch.nn.Module):
        main_input_name = getattr(models[0], "main_input_name", "input_values")

        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.members = torch.nn.ModuleList(models)
            self.temperatures = [float(t) for t in temperatures]

        def forward(self, labels=None, **inputs: Any) -> SequenceClassifierOutput:
            logp = torch.stack([torch.log_softmax(m(**inputs).logits.float() / t, dim=-1)
                                for m, t in zip(self.members, self.temperatures)])
            logits = torch.logsumexp(logp, dim=0) - math.log(len(self.members))
            loss = None if labels is None else torch.nn.functional.nll_loss(logits, labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return EnsembleForAudioClassification().eval()


def assemble(runs: Sequence[str | Path], out: str | Path, *, allow_pickle: bool = False) -> Path:
    """Check the members and write the ensemble run dir (temperature 1.0 until one is fitted).

    Args:
        runs: Two or more local models: emovox run dirs or ``save_pretrained`` folders (ensembles too).
        out: The folder to create (absent or empty).

    Raises:
        BadRunDir: fewer than two members, a member that is not a local model, members whose
            labels or inputs differ (one line naming both), or ``out`` holding files.
    """
    from .loading import check_weights
    from .source import open_source

    out = Path(out)
    if len(runs) < 2:
        raise BadRunDir(f"an ensemble needs two or more models; got {len(runs)}")
    for r in runs:
        if not Path(r).is_dir():
            raise BadRunDir(f"ensemble member {r} is not a local folder; give run dirs or save_pretrained folders")
        if out.resolve() == Path(r).resolve() or out.resolve().is_relative_to(Path(r).resolve()):
            raise BadRunDir(f"--out {out} lies inside member {r}; choose a folder outside the members")
        check_weights(r, allow_pickle=allow_pickle)
    if out.exists() and any(out.iterdir()):
        raise BadRunDir(f"{out} exists and is not empty; choose a new folder for the ensemble")
    sources = [open_source(r, allow_pickle=allow_pickle) for r in runs]
    check_labels(sources)
    fronts = [front_end(s) for s in sources]
    check_front_ends(sources, fronts)
    names = _member_names(runs)
    for r, name in zip(runs, names):
        shutil.copytree(r, out / MEMBERS_DIR / name, ignore=shutil.ignore_patterns(*SKIPPED), dirs_exist_ok=True)
    shortest = min(range(len(sources)), key=lambda i: fronts[i]["limit"])  # windows fit every member
    for name in ROOT_FILES:
        src = out / MEMBERS_DIR / names[shortest] / name
        if src.is_file():
            shutil.copyfile(src, out / name)
    if not (out / ROOT_FILES[1]).is_file():  # a save_pretrained folder without one: its family's default
        fronts[shortest]["fe"].save_pretrained(str(out))
    (out / META).write_text(json.dumps(ensemble_meta(sources, names), indent=2))
    return out


def check_labels(sources: Sequence[Any]) -> None:
    """Refuse members whose labels (names and order) differ from the first member's.

    Raises:
        BadRunDir: one line naming both models and their labels.
    """
    first = sources[0]
    for s in sources[1:]:
        if s.scheme.labels != first.scheme.labels:
            raise BadRunDir(f"cannot ensemble {s.ref} with {first.ref}: their labels differ "
                            f"({','.join(s.scheme.labels)} vs {','.join(first.scheme.labels)}); members must "
                            "share one label list in the same order")


def front_end(source: Any) -> dict[str, Any]:
    """What a member's input looks like: family, input name, mask use, the features of the probe
    waves, and the longest input it takes (seconds; inf when unlimited)."""
    from .backbones import backbone_for
    from .loading import feature_extractor_for

    family = backbone_for(source.config, strict=False)
    fe = feature_extractor_for(source.ref, source.config)
    limit = family.max_seconds(source.config) or float("inf")
    return {"family": family, "fe": fe, "input": family.input_name, "mask": family.uses_attention_mask(fe),
            "features": [family.featurize(fe, w) for w in probe_waves()], "limit": limit}


def check_front_ends(sources: Sequence[Any], fronts: Sequence[dict[str, Any]]) -> None:
    """Refuse members that need different inputs (see the module docstring).

    Raises:
        BadRunDir: one line naming both models and how their inputs differ.
    """
    a = fronts[0]
    for s, b in zip(sources[1:], fronts[1:]):
        why = ""
        if (a["input"], a["mask"]) != (b["input"], b["mask"]):
            why = (f"{a['family'].family or 'generic'} takes {a['input']}{' with a mask' if a['mask'] else ''}, "
                   f"{b['family'].family or 'generic'} {b['input']}{' with a mask' if b['mask'] else ''}")
        elif any(x.shape != y.shape or not np.allclose(x, y, atol=1e-5) for x, y in zip(a["features"], b["features"])):
            why = "their feature extractors turn the same wave into different inputs (settings, mel bins or trimming)"
        if why:
            raise BadRunDir(f"cannot ensemble {s.ref} with {sources[0].ref}: {why}; members must share one front "
                            "end (score them side by side with `emovox predict RUN1 RUN2 ...` instead)")


def probe_waves() -> list[np.ndarray]:
    """Deterministic waves with silence around a voiced sound, so settings that differ show."""
    from ..data.audio import SAMPLE_RATE

    rng = np.random.default_rng(0)
    out = []
    for lead, sound, trail in PROBE_SECONDS:
        t = np.arange(int(sound * SAMPLE_RATE)) / SAMPLE_RATE
        voiced = 0.3 * np.sin(2 * np.pi * (140 + 30 * np.sin(3 * t)) * t) + 0.02 * rng.standard_normal(t.size)
        quiet = [1e-4 * rng.standard_normal(int(s * SAMPLE_RATE)) for s in (lead, trail)]
        out.append(np.concatenate([quiet[0], voiced, quiet[1]]).astype(np.float32))
    return out


def ensemble_meta(sources: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """``emovox.json`` of an ensemble: the first member's scheme, the shortest training length,
    what each member is, and the data section when every member saw the same manifest."""
    from ..rundir import environment

    first = sources[0]
    scheme = first.meta.get("scheme") or first.scheme.to_dict()
    prints = {s.meta.get("manifest_fingerprint") for s in sources}
    members = [{"path": f"{MEMBERS_DIR}/{n}", "source": str(Path(s.ref).resolve()),
                "model_source": s.meta.get("model_source") or getattr(s.config, "_name_or_path", "") or s.ref,
                "model_type": str(getattr(s.config, "model_type", "")), "temperature": s.temperature,
                "kind": s.meta.get("kind", "model"), "seed": s.meta.get("seed"),
                "evaluation": dict(s.meta.get("evaluation") or {})}
               for s, n in zip(sources, names)]
    meta = {"kind": KIND, "scheme": scheme, "members": members,
            "model_source": ", ".join(m["model_source"] for m in members),
            "max_seconds": min(s.max_seconds for s in sources), "temperature": 1.0, "temperature_in_weights": False,
            "temperature_fit": None, "environment": environment()}
    if len(prints) == 1 and None not in prints:
        meta.update(manifest_fingerprint=first.meta["manifest_fingerprint"], manifest=first.meta.get("manifest"),
                    data=first.meta.get("data", {}))
    return meta


def _member_names(runs: Sequence[str | Path]) -> list[str]:
    """``01-NAME``: the folder's name, with its parent's where the name alone is generic (``fold-2-run``)."""
    out = []
    for i, r in enumerate(runs, start=1):
        p = Path(r).resolve()
        name = f"{p.parent.name}-{p.name}" if p.name in ("run", "model", "out") else p.name
        out.append(f"{i:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:60]}")
    return out
