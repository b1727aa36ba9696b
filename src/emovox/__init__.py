"""emovox: speech emotion recognition with wav2vec2-family and Whisper encoders.

The Python API is the command line's library: each ``emovox`` command calls one of these
functions (keyword-only arguments; errors a user can fix are :class:`EmovoxError` kinds).

    prepare        corpus folder -> manifest.csv, data report            (``emovox prepare``)
    train          manifest -> run dir (model, emovox.json, model card)  (``emovox train``)
    evaluate       run dir(s) + manifest split -> metrics dict, report   (``emovox evaluate``)
    predict        run dir(s) + files -> iterator of result rows        (``emovox predict``)
    Predictor      a loaded model (or ensemble) to score files or waves
    export         run dir -> ONNX (fp32/int8) with a parity check       (``emovox export``)
    stress         run dir(s) + manifest split under degradations -> report (``emovox stress``)
    baseline       eGeMAPS + logistic regression on a manifest           (``emovox baseline``)
    cv, search     speaker-grouped cross-validation, Optuna search       (``emovox cv``/``search``)
    push           run dir -> Hugging Face Hub model repo                (``emovox push``)

Heavy modules (torch, transformers) load on first use of a name, so ``import emovox`` stays fast.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (BadAudio, BadConfig, BadLabel, BadManifest, BadModel, BadRunDir, EmovoxError,  # noqa: E402
                     HubError, InvalidCorpus)
from .labels import LabelScheme, get_scheme  # noqa: E402

# public name -> "module:attribute", imported on first access (PEP 562)
_LAZY = {
    "demo_data": "emovox.data.synthetic:make_demo_corpus",
    "prepare": "emovox.data.prepare:prepare",
    "PrepareResult": "emovox.data.prepare:PrepareResult",
    "load_manifest": "emovox.data.manifest:load_manifest",
    "load_config": "emovox.config:load_config",
    "init_model": "emovox.models.presets:init_model",
    "import_ct2": "emovox.models.ct2_import:import_ct2",
    "train": "emovox.training.train:train",
    "TrainResult": "emovox.training.common:TrainResult",
    "cv": "emovox.training.cv:cross_validate",
    "search": "emovox.training.search:search",
    "matrix": "emovox.training.matrix:matrix",
    "adapt": "emovox.training.adapt:adapt",
    "pseudo_label": "emovox.training.pseudo_label:pseudo_label",
    "evaluate": "emovox.evaluation.evaluate:evaluate",
    "baseline": "emovox.evaluation.baseline:run_baseline",
    "stress": "emovox.evaluation.stress:stress",
    "predict": "emovox.inference.predict:predict",
    "Predictor": "emovox.inference.predict:Predictor",
    "write_rows": "emovox.inference.output:write_rows",
    "export": "emovox.inference.export:export_onnx",
    "serve": "emovox.inference.serve:serve",
    "write_model_card": "emovox.modelcard:write_model_card",
    "load_card": "emovox.modelcard:load_card",
    "push": "emovox.hub:push",
}

__all__ = [
    "__version__", "EmovoxError", "BadAudio", "BadConfig", "BadLabel", "BadManifest", "BadModel", "BadRunDir",
    "HubError", "InvalidCorpus", "LabelScheme", "get_scheme", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on demand: importlib.metadata costs ~0.1 s of every command's start
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("emovox")
        except PackageNotFoundError:  # running from a source tree without install
            value = "0.0.0"
        globals()[name] = value
        return value
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'emovox' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
