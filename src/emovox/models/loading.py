"""Models in and out: for training (a preset size, a local directory or a hub id, with a fresh
head and the configured freezing and LoRA), for inference (any model source: an emovox run dir,
any ``save_pretrained`` directory of an audio-classification model, or a hub id), and saving.

Mean pooling without the multi-task head is the stock ``AutoModelForAudioClassification`` (with
``use_weighted_layer_sum`` for ``layer_weighting``), so such a run dir loads in
``transformers.pipeline``; attentive pooling and the multi-task head are
:class:`~emovox.models.heads.EmovoxForAudioClassification`. :func:`load_trained` loads either kind.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import DROPOUT_KEYS, LORA_TARGETS, POOLINGS, ModelConfig
from ..data.audio import DEFAULT_MAX_SECONDS
from ..errors import BadConfig, BadRunDir
from ..labels import LabelScheme
from .backbones import backbone_for, carry_family
from .ensemble import ensemble_module, ensemble_parts, is_ensemble
from .layer_budget import budget_overrides, check_budget, keep_layers_state
from .heads import HEAD_FILE, WEIGHTS_FILE, EmovoxForAudioClassification, HeadConfig
from .presets import PRESETS, label_kwargs, preset_config, preset_feature_extractor
from .registry import model_choices, resolve_model_name
from .tuning import add_lora, apply_freezing, backbone_of, merge_lora


def check_model_config(cfg: ModelConfig, scheme: LabelScheme | None = None) -> None:
    """Reject settings that are unknown or contradict each other, naming the key and valid values.

    Raises:
        BadConfig: the first problem found.
    """
    if cfg.pooling not in POOLINGS:
        raise BadConfig(f"unknown model.pooling {cfg.pooling!r}; valid: {', '.join(POOLINGS)}")
    for key in ("freeze_layers", "lora_r", "stats_skip_states"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadConfig(f"model.{key}={value!r} must be a whole number >= 0")
    if cfg.lora_r and cfg.freeze_backbone:
        raise BadConfig(f"model.lora_r={cfg.lora_r} trains LoRA matrices inside the backbone, but "
                        "model.freeze_backbone=true trains the head only; set one of them off")
    if cfg.multitask and scheme is not None and not scheme.composite:
        raise BadConfig(f"model.multitask needs a composite (emotion_intensity) scheme; {scheme.name!r} is flat "
                        "(use e.g. data.scheme=crema-d-21)")
    if float(cfg.intensity_loss_weight) < 0:
        raise BadConfig(f"model.intensity_loss_weight={cfg.intensity_loss_weight!r} must be >= 0")
    trim = cfg.trim_silence_db
    if trim is not None and (isinstance(trim, bool) or not isinstance(trim, (int, float)) or trim < 0):
        raise BadConfig(f"model.trim_silence_db={trim!r} must be a number of dB (e.g. 35; 0 or null: off)")
    check_budget(cfg.layer_budget)
    if cfg.stats_skip_states and cfg.pooling != "stats":
        raise BadConfig(f"model.stats_skip_states={cfg.stats_skip_states} leaves hidden states out of a stats head: "
                        "set model.pooling=stats (or stats_skip_states=0)")
    if cfg.stats_skip_states and not (cfg.freeze_backbone and cfg.cache_features):
        raise BadConfig("model.stats_skip_states acts where a frozen probe's head is fitted on cached features: "
                        "set model.freeze_backbone=true and model.cache_features=true (or stats_skip_states=0)")
    if cfg.stats_skip_states and cfg.tune_upper_layers:
        raise BadConfig("model.stats_skip_states works on the frozen probe's head; model.tune_upper_layers trains "
                        "its own: set one of them to 0")
    if isinstance(cfg.lora_target_modules, str) or not cfg.lora_target_modules:
        raise BadConfig(f"model.lora_target_modules={cfg.lora_target_modules!r} must be a non-empty list "
                        f"of module names, e.g. {LORA_TARGETS}")


def load_model(name: str, scheme: LabelScheme, cfg: ModelConfig | None = None, *, seed: int = 0,
               max_seconds: float = DEFAULT_MAX_SECONDS):
    """Model and feature extractor for training: preset, local directory or hub id.

    A pretrained checkpoint gets a fresh head sized for ``scheme``; dropout overrides from ``cfg``
    go into the model config before the weights load; then freezing, LoRA and gradient
    checkpointing are applied as ``cfg`` says.

    ``name`` may also be a registry name (``whisper-base``) or a hub id whose registry twin stands
    in when the hub cannot be reached (:func:`~emovox.models.registry.resolve_model_name`).

    Raises:
        BadConfig: the name is neither a preset, a directory, a registry name nor a loadable hub
            id (the message lists what works); bad settings.
    """
    import torch

    cfg = cfg or ModelConfig(name=name)
    check_model_config(cfg, scheme)
    overrides = {k: getattr(cfg, k) for k in DROPOUT_KEYS if getattr(cfg, k) is not None}
    torch.manual_seed(seed)
    if cfg.custom_head:
        backbone, fe = _load_pretrained(name, scheme, overrides, stock=False, budget=cfg.layer_budget)
        head = HeadConfig(pooling=cfg.pooling, layer_weighting=bool(cfg.layer_weighting),
                          multitask=bool(cfg.multitask), intensity_loss_weight=float(cfg.intensity_loss_weight),
                          proj_size=int(getattr(backbone.config, "classifier_proj_size", 256)),
                          scheme=scheme.to_dict(), skip_states=int(cfg.stats_skip_states))
        model = EmovoxForAudioClassification(backbone, head)
    else:
        if cfg.layer_weighting:
            overrides["use_weighted_layer_sum"] = True
        model, fe = _load_pretrained(name, scheme, overrides, stock=True, budget=cfg.layer_budget)
        if cfg.layer_weighting and not hasattr(model, "layer_weights"):
            raise BadConfig(f"model.layer_weighting is not supported by {type(model).__name__}; use a "
                            "wav2vec2, HuBERT, WavLM or data2vec-audio model")
    family = carry_family(model, backbone_for(model))  # resolved once, before any lever reads it (family_of)
    apply_freezing(model, cfg)
    family.configure_inputs(fe, window_seconds=float(max_seconds), pad_to_window=bool(cfg.pad_to_window))
    family.configure_trim(fe, cfg.trim_silence_db)
    if cfg.lora_r:
        add_lora(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, fe


def _load_pretrained(name: str, scheme: LabelScheme, overrides: dict[str, Any], *, stock: bool,
                     budget: int | None = None):
    """A stock classifier (``stock``) or a bare ``AutoModel`` encoder, and the feature extractor;
    with ``budget``, its encoder has only its first ``budget`` layers (``models.layer_budget``).

    Raises:
        BadConfig: the name cannot be loaded.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

    auto = AutoModelForAudioClassification if stock else AutoModel
    if name in PRESETS:
        config = preset_config(name, scheme, **overrides)
        config.update(budget_overrides(budget, config.num_hidden_layers))
        return auto.from_config(config), preset_feature_extractor(name)
    asked, name = name, resolve_model_name(name, progress=True)
    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(name, **label_kwargs(scheme), **overrides)
            family = backbone_for(config)  # a family emovox knows, or one clear line
            config.update(budget_overrides(budget, family.n_layers(config)))
            fe = feature_extractor_for(name, config)
            cls = family.classifier_class(AutoModelForAudioClassification)
            state = _custom_run_backbone(Path(name))
            if state is None:
                if stock:
                    return cls.from_pretrained(name, config=config, ignore_mismatched_sizes=True), fe
                return family.encoder_from_pretrained(name, config), fe
            model = (cls.from_config(config) if hasattr(cls, "from_config") else cls(config)) if stock \
                else family.encoder_from_config(config)
            (backbone_of(model) if stock else model).load_state_dict(
                keep_layers_state(state, family.n_layers(config)))
            return model, fe
        except (OSError, ValueError) as exc:
            raise BadConfig(f"cannot load model {asked!r}: {str(exc).splitlines()[0]} ({model_choices()})") from None


@contextmanager
def quiet_transformers():
    """Mute transformers' load report and weight-loading bars: a pretrained encoder under a fresh
    head always leaves the head "missing" and the decoder "unexpected", which is what emovox wants."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def feature_extractor_for(name: str | Path, config: Any):
    """The model's own feature extractor, or its family's default when it saved none.

    Raises:
        OSError: a hub id that cannot be reached (the caller names the model).
    """
    from transformers import AutoFeatureExtractor

    saved = ("preprocessor_config.json", "processor_config.json")
    if Path(name).is_dir() and not any((Path(name) / f).is_file() for f in saved):
        return backbone_for(config, strict=False).default_feature_extractor(config)
    return AutoFeatureExtractor.from_pretrained(name)


def _custom_run_backbone(path: Path) -> dict | None:
    """The backbone weights of a custom-head run dir (to start a new run from it), else None."""
    if not (path / HEAD_FILE).is_file():
        return None
    from safetensors.torch import load_file

    prefix = "backbone."
    return {k[len(prefix):]: v for k, v in load_file(str(path / WEIGHTS_FILE)).items() if k.startswith(prefix)}


def save_trained(model, out: str | Path) -> Path:
    """Save a trained model as a run dir's model files (LoRA merged first) for :func:`load_trained`.

    A stock head writes ``save_pretrained`` files; an emovox head writes ``config.json``,
    ``emovox_head.json`` and ``emovox_model.safetensors``. Files of the other kind are removed.
    """
    out = Path(out)
    merge_lora(model)
    custom = isinstance(model, EmovoxForAudioClassification)
    stale = ("model.safetensors", "pytorch_model.bin") if custom else (HEAD_FILE, WEIGHTS_FILE)
    for name in stale:
        (out / name).unlink(missing_ok=True)
    model.save_pretrained(out)
    return out


SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", WEIGHTS_FILE)
PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_weights(source: str | Path, *, allow_pickle: bool = False) -> None:
    """Refuse a local model folder whose weights are pickled only: unpickling runs code.

    Raises:
        BadRunDir: no safetensors weights but (without ``allow_pickle``) pickled ones.
    """
    path = Path(source)
    if not path.is_dir():
        return  # a hub id: from_pretrained is told to take safetensors only
    if any((path / n).is_file() for n in SAFE_WEIGHTS):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in PICKLED_SUFFIXES)
    if pickled and not allow_pickle:
        raise BadRunDir(f"{path}: weights only as pickle ({', '.join(pickled[:3])}), which can run code when "
                        "loaded; emovox loads safetensors only (convert the folder, or pass --allow-pickle if "
                        "you trust it)")


def load_trained(source: str | Path, *, allow_pickle: bool = False, config: Any = None):
    """The one loader of a classifier for inference (eval mode): an emovox run dir (stock or
    emovox head), any ``save_pretrained`` audio-classification directory, or a hub id.

    ``config``: the source's ``AutoConfig``, when the caller has read it already
    (``models.source.open_source``), so it is not parsed twice.

    Weights come from safetensors only unless ``allow_pickle``; no code from the model folder
    ever runs (``trust_remote_code`` is off); weights that do not fit the config (another label
    count, missing layers) are refused rather than filled with random values.

    Raises:
        BadRunDir: nothing loadable there, pickled weights, or weights that disagree with the config.
    """
    model = _load_classifier(source, allow_pickle=allow_pickle, config=config)
    carry_family(model)  # resolved once, here: every lever after reads it (backbones.family_of)
    return model


def _load_classifier(source: str | Path, *, allow_pickle: bool, config: Any):
    """``load_trained``'s loading, by kind of source."""
    if is_ensemble(source):  # several run dirs as one module (models/ensemble.py)
        dirs, temperatures, config = ensemble_parts(source)
        return ensemble_module([load_trained(d, allow_pickle=allow_pickle) for d in dirs], temperatures, config)
    if Path(source).is_dir() and (Path(source) / HEAD_FILE).is_file():
        check_weights(source, allow_pickle=allow_pickle)
        return EmovoxForAudioClassification.from_pretrained(source)
    from transformers import AutoConfig, AutoModelForAudioClassification

    try:
        if config is None:
            config = AutoConfig.from_pretrained(str(source), trust_remote_code=False)
        cls = backbone_for(config, strict=False).classifier_class(AutoModelForAudioClassification)
        check_weights(source, allow_pickle=allow_pickle)
        with quiet_transformers():
            model, info = cls.from_pretrained(str(source), config=config, trust_remote_code=False,
                                              use_safetensors=None if allow_pickle else True,
                                              output_loading_info=True)
    except BadRunDir:
        raise
    except (OSError, ValueError) as exc:
        raise BadRunDir(f"cannot load a model from {source}: {str(exc).splitlines()[0]} "
                        "(expected an emovox run dir, a save_pretrained audio-classification folder "
                        "or a reachable hub id)") from None
    except RuntimeError as exc:  # size mismatches: the weights are of another shape than config.json says
        if "mismatch" not in str(exc).lower():
            raise BadRunDir(f"{source}: cannot load the weights: {str(exc).splitlines()[0][:200]}") from None
        raise BadRunDir(f"{source}: weights do not fit config.json: {_mismatch(source, config)}") from None
    except Exception as exc:  # noqa: BLE001 - a refused pickle (weights_only), a corrupt file, ...
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise BadRunDir(f"{source}: cannot load the weights ({type(exc).__name__}: {first})") from None
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise BadRunDir(f"{source}: weights lack {len(missing)} tensor(s) the config needs (e.g. {missing[0]}); "
                        "they would be random")
    return model.eval()


def _mismatch(source: str | Path, config: Any) -> str:
    """Say which shape disagrees: the classifier's label count when it is that."""
    path = Path(source) / "model.safetensors"
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            for key in f.keys():
                if key.endswith("classifier.weight"):
                    n = f.get_slice(key).get_shape()[0]
                    if n != config.num_labels:
                        return f"id2label has {config.num_labels} labels, the classifier in the weights {n}"
    return "a tensor's shape differs from what config.json describes"
