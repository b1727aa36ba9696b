"""Several trained models as one: an ensemble run dir, loaded as one torch module.

Seeds, cross-validation folds or encoders (e.g. whisper-tiny.en and whisper-base probes) saved
together are one model for every command that scores audio: ``predict``, ``evaluate``, ``serve``,
``stress`` and ``export`` (one ONNX graph) load it through :func:`~emovox.models.loading.load_trained`
like any run dir, with no code of their own for it.

Layout (``emovox ensemble RUN1 RUN2 ... --out ENS``, written by ``training/ensemble_build.py``)::

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
from pathlib import Path
from typing import Any, Sequence

from ..errors import BadRunDir
from ..rundir import META

KIND = "ensemble"
MEMBERS_DIR = "members"


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


def ensemble_parts(path: str | Path) -> tuple[list[Path], list[float], Any]:
    """What :func:`~emovox.models.loading.load_trained` needs to load an ensemble: the member
    folders, each member's own temperature, and the ensemble's config.

    Raises:
        BadRunDir: a member is missing or its emovox.json is malformed.
    """
    from transformers import AutoConfig

    from .source import open_source

    dirs = member_dirs(path)
    return dirs, [open_source(d).temperature for d in dirs], AutoConfig.from_pretrained(str(path))


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
