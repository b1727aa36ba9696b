"""ONNX export, int8 dynamic quantisation and the torch-vs-ONNX parity check.

An export directory is a self-contained run dir for the ONNX backend: ``model.onnx`` (int8 when
quantised, the fp32 graph then kept as ``model_fp32.onnx``) beside the run's ``config.json``
(labels), ``preprocessor_config.json`` (normalisation, attention mask, trimming, Whisper's window),
``emovox.json`` (scheme, temperature, training length) and, for Whisper, the mel filter bank and
STFT window as ``.npy``: everything the runtime install (onnxruntime and numpy, no torch, no
transformers) needs to score audio as the run dir does.

The graph is traced with the TorchScript exporter (``dynamo=False``): for wav2vec2 it is as exact
as the dynamo exporter at every length and batch size, but exports 3-30x faster and writes one
file. ``dynamo=True`` is kept as an option; the parity check guards either.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig, BadRunDir
from ..models.backbones import family_of
from ..models.backbones.front_end import front_end_for, save_front_end
from ..models.export_dir import ONNX_FILE, JsonConfig
from ..rundir import META

MODEL_FILE = ONNX_FILE
FP32_FILE = "model_fp32.onnx"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
COPIED_FILES = (CONFIG_FILE, PREPROCESSOR_FILE, META)
# What int8 quantises, chosen by measurement (benchmarks/RESULTS.md, "int8 choices": base preset,
# RAVDESS clips, 2 threads, AVX2 CPU without VNNI; audio-seconds per second, `transformers.pipeline`
# 9.2, ONNX fp32 11.1; top-1 agreement with fp32 of the trained demo model on 783 unseen clips):
#   MatMul only, uint8 weights, per-channel (default)            13.1  99.87%
#   MatMul only, int8 7-bit weights, per-channel                  14.6  99.49%
#   + feature encoder as MatMuls, int8 7-bit (int8_encoder=True)  17.1  98.60%
# The default was picked before that run, on two other sets of 348 unseen clips: 0 and 1 flips for
# uint8 per-channel, 5 and 4 for int8 7-bit (3x the mean probability error).
# uint8 weights use all 8 bits (the u8u8 kernel); int8 weights take the faster u8s8 kernel, whose
# AVX2 multiply-add saturates 16-bit sums unless the weights are 7-bit (reduce_range): half the
# resolution, 3x the probability error. Conv/ConvInteger has no fast int8 kernel here, so the
# convolutional encoder (a third of base's FLOPs) gets int8 only as MatMuls (matmul_encoder.py):
# the fastest export, whose error adds up over six layers and flips near-ties, so it is opt-in.
DEFAULT_QUANTIZE_OPS: tuple[str, ...] = ("MatMul",)
# Families with ``int8_smoothing`` (Whisper) are rescaled exactly before quantising (smoothing.py:
# per-frame scaling of every layer's MatMul input, SmoothQuant channel folds calibrated on the check
# waves) and keep these MatMuls fp32: the head's projector reads the layer-weighted residual stream,
# whose outlier frames reach 100 (under 1% of the MatMul FLOPs). Top-1 agreement with torch fp32 of
# the whisper-base probe (configs/whisper-probe-stock.yaml, actors 01-08) on the 480 clips of actors
# 09-16, and int8/fp32 ONNX wall time (1 thread, interleaved, AVX2 CPU without VNNI):
#   plain dynamic int8 (MatMul, u8 per-channel)            86.5%  1.07x
#   per-frame scaling + channel folds, projector fp32      96.3%  1.01x  (this default)
#   the same, layer 0 fp32 too                             96.7%  0.97x
# Short of 99.5% (at most 2 flips in 480), and no 8-bit variant reaches it: 2.3% of those clips have
# their top two logits within 0.05, and int8 of any one group of MatMuls moves the logits by 0.03 or
# more (simulated in torch: fc1 alone 6 flips, one layer alone 3-8, weights alone 14, activations
# alone 13; SmoothQuant alpha 0.3 / 0.7: 15 / 11; bias correction of the weight rounding calibrated
# on 64 training clips: 17 -> 12, and worse logits when calibrated on synthetic waves).
SMOOTHED_KEEP_FP32: tuple[str, ...] = ("/projector/",)
WEIGHT_TYPE_FOR = {False: "uint8", True: "int8"}  # int8_encoder -> default weight type
QUANTIZABLE_OPS = ("MatMul", "Conv", "Gemm")
WEIGHT_TYPES = ("uint8", "int8")
EXAMPLE_SECONDS = 1.0
CHECK_SECONDS = (1.0, 1.7, 2.6, 4.0)
FP32_PROB_TOLERANCE = 1e-3
RUN_DIR_HINT = ("an emovox run dir, a save_pretrained audio-classification folder (config.json and weights) "
                "or a hub id")


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and how closely ``model.onnx`` follows the torch model.

    Attributes:
        onnx_path: The model to serve (``OUT/model.onnx``; int8 when ``int8``).
        int8: Whether ``onnx_path`` is dynamically quantised.
        max_prob_diff: Largest absolute softmax-probability difference, ONNX vs torch.
        top1_agreement: Share of check inputs whose arg-max class agrees.
        n_checked: Number of check inputs compared.
        quantized_ops: Operator types quantised (empty for fp32).
        max_logit_diff: Largest absolute logit difference; more telling than probabilities for
            untrained models, whose outputs are near-uniform.
        matmul_encoder: Whether the feature encoder was exported as MatMuls (and so quantised).
        smoothed: Whether the encoder was rescaled before quantising (``smoothing.py``).
    """

    onnx_path: Path
    int8: bool
    max_prob_diff: float
    top1_agreement: float
    n_checked: int
    quantized_ops: tuple[str, ...]
    max_logit_diff: float = 0.0
    matmul_encoder: bool = False
    smoothed: bool = False


def export_onnx(
    *,
    run_dir: str | Path,
    out: str | Path,
    int8: bool = False,
    quantize_ops: Sequence[str] = DEFAULT_QUANTIZE_OPS,
    weight_type: str | None = None,
    opset: int = 17,
    check_inputs: list[np.ndarray] | None = None,
    dynamo: bool = False,
    int8_encoder: bool = False,
    allow_pickle: bool = False,
    conversation: bool = False,
) -> ExportResult:
    """Export a run dir's classifier to ONNX (optionally int8) and check it against torch.

    Args:
        run_dir: An emovox run dir, a ``save_pretrained`` directory of an audio-classification
            model (its feature extractor, else the family's default), or a hub id.
        out: Directory to write; created if needed. It becomes a run dir for the ONNX backend.
        int8: Also quantise the graph dynamically and serve the int8 model.
        quantize_ops: ONNX operator types to quantise when ``int8``.
        weight_type: ``"uint8"`` or ``"int8"`` (7-bit) weights when ``int8``; default uint8, or
            int8 with ``int8_encoder`` (the fast path).
        opset: ONNX opset for the TorchScript exporter (the dynamo exporter uses at least 18).
        check_inputs: Raw 16 kHz mono waves for the parity check; default: synthetic waves of
            1-4 s. Each is normalised by the run's feature extractor as the predictor does. With
            ``int8`` on a family that smooths (Whisper) they also calibrate the smoothing.
        dynamo: Use the torch.export-based exporter instead of the TorchScript one.
        int8_encoder: With ``int8``, export the convolutional feature encoder as MatMuls so that
            it is quantised too (when it has the wav2vec2 shape), with int8 weights: about 1.3x
            faster, at more top-1 flips on near-ties. ``False`` keeps it fp32.
        allow_pickle: Also load pickled ``.bin``/``.pt`` weights.
        conversation: Also write the speech detector and speaker encoder (``conversation_export``)
            for ``--segment vad --speakers`` under the runtime install; else drop a stale copy.

    Returns:
        The written model path and the parity numbers of that model against torch.

    Raises:
        BadRunDir: ``run_dir`` is missing, lacks its config or feature extractor, or does not load.
        BadConfig: unknown ``quantize_ops`` or ``weight_type``; ``conversation`` without
            silero-vad and Resemblyzer installed.
    """
    from .conversation_export import update_bundle

    out = Path(out)
    weight_type = weight_type or WEIGHT_TYPE_FOR[int8_encoder]
    ops = _check_quantize_args(quantize_ops, weight_type) if int8 else ()
    model, fe = load_torch_classifier(run_dir, allow_pickle=allow_pickle)
    family = family_of(model)
    with_mask = family.uses_attention_mask(fe)
    out.mkdir(parents=True, exist_ok=True)
    update_bundle(out, conversation)
    model_path = out / MODEL_FILE
    fp32_path = out / FP32_FILE if int8 else model_path
    # fp32 stays convolutional: ORT's Conv beat the MatMul form there (10.9 vs 10.0 audio-s/s, by hand)
    graph_model = model
    matmul_encoder = False
    if int8 and int8_encoder:
        from ..models.matmul_encoder import use_matmul_encoder

        graph_model = copy.deepcopy(model)
        matmul_encoder = all([use_matmul_encoder(m) for m in getattr(graph_model, "members", [graph_model])])
    waves = check_inputs if check_inputs is not None else synthetic_waves()
    smoothed = int8 and family.int8_smoothing
    if smoothed:
        graph_model = smoothed_copy(graph_model, fe, family, waves)
    example = family.featurize(fe, synthetic_waves((EXAMPLE_SECONDS,))[0])[None]
    export_graph(graph_model, fp32_path, with_mask=with_mask, opset=opset, dynamo=dynamo,
                 input_name=family.input_name, example=example)
    if int8:
        quantize_onnx(fp32_path, model_path, ops=ops, weight_type=weight_type,
                      keep_fp32=SMOOTHED_KEEP_FP32 if smoothed else ())
    else:
        (out / FP32_FILE).unlink(missing_ok=True)  # a stale one from an earlier --int8 export
    copy_run_files(run_dir, out, model=model, fe=fe)
    save_front_end(fe, out)  # the runtime computes the front end in numpy (models/backbones/front_end.py)
    clf = OnnxClassifier.from_dir(out)
    prob_diff, logit_diff, top1 = parity(model, clf, fe, waves, onnx_fe=front_end_for(out))
    if not int8 and prob_diff > FP32_PROB_TOLERANCE:
        warnings.warn(f"ONNX export {model_path} differs from torch by {prob_diff:.2g} in probability",
                      RuntimeWarning, stacklevel=2)
    return ExportResult(model_path, int8, prob_diff, top1, len(waves), tuple(ops), logit_diff, matmul_encoder,
                        smoothed)


INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # x86 int8 dot products ONNX Runtime's MLAS uses


def cpu_int8_note(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """A hint for ``export --int8`` on an x86 CPU without int8 dot-product instructions (VNNI, AMX),
    where dynamic int8 MatMuls run at about fp32's speed (benchmarks/RESULTS.md: int8 / fp32 ONNX
    0.9-1.2x on an AVX2-only EPYC, 1.3x and more on an AVX-512 VNNI one). None when the CPU has
    them or cannot be told (not Linux, not x86)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), None)
    if not flags or "avx2" not in flags or any(f in flags for f in INT8_DOT_FLAGS):
        return None
    return ("this CPU has no VNNI or AMX int8 instructions, so int8 runs at about fp32's speed on it; prefer "
            "the fp32 export unless the model serves on a CPU that has them")


def smoothed_copy(model: Any, fe: Any, family: Any, waves: Sequence[np.ndarray]) -> Any:
    """A copy of ``model`` with its encoder smoothed for int8, calibrated on ``waves``."""
    import torch

    from .smoothing import smooth_whisper

    model = copy.deepcopy(model)
    inputs = [encode(fe, w, family) for w in waves]

    def calibrate() -> None:
        for values, mask in inputs:
            model(**{family.input_name: torch.from_numpy(values)},
                  attention_mask=None if mask is None else torch.from_numpy(mask))

    for member in getattr(model, "members", [model]):  # an ensemble (models/ensemble.py): each encoder
        smooth_whisper(family.encoder_of(member), calibrate)
    return model


def load_torch_classifier(source: str | Path, *, allow_pickle: bool = False) -> tuple[Any, Any]:
    """Load a model source's classifier (eval mode) and feature extractor.

    Raises:
        BadRunDir: a local folder without config.json, or loading fails.
    """
    from ..models.loading import feature_extractor_for, load_trained
    from ..models.source import read_config_dict, resolve_ref

    source = resolve_ref(source)
    if Path(source).exists():
        _require_files(Path(source), (CONFIG_FILE,), RUN_DIR_HINT)
    read_config_dict(str(source))  # malformed, or custom code (auto_map): one line
    model = load_trained(source, allow_pickle=allow_pickle)
    try:
        fe = feature_extractor_for(source, model.config)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise BadRunDir(f"cannot load the feature extractor of {source}: {reason}; expected {RUN_DIR_HINT}") from None
    return model.eval(), fe


def _require_files(path: Path, names: Sequence[str], expected: str) -> None:
    """Raise BadRunDir naming the first missing piece of ``path``."""
    if not path.is_dir():
        raise BadRunDir(f"run dir {path} is not a directory; expected {expected}")
    for name in names:
        if not (path / name).is_file():
            raise BadRunDir(f"run dir {path} has no {name}; expected {expected}")


def _check_quantize_args(ops: Sequence[str], weight_type: str) -> tuple[str, ...]:
    """Validate quantisation options.

    Raises:
        BadConfig: an operator or weight type that cannot be dynamically quantised here.
    """
    ops = tuple(ops)
    bad = [op for op in ops if op not in QUANTIZABLE_OPS]
    if bad or not ops:
        valid = ", ".join(QUANTIZABLE_OPS)
        raise BadConfig(f"cannot quantise ops {list(bad or ops)}; valid: a non-empty subset of {valid}")
    if weight_type not in WEIGHT_TYPES:
        raise BadConfig(f"unknown int8 weight type {weight_type!r}; valid: {', '.join(WEIGHT_TYPES)}")
    return ops


def _logits_only(model: Any, with_mask: bool, input_name: str) -> Any:
    """Wrap ``model`` so forward takes exactly the exported inputs and returns only logits."""
    import torch

    class WithMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(**{input_name: inputs}, attention_mask=attention_mask).logits

    class NoMask(WithMask):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return self.model(**{input_name: inputs}).logits

    return (WithMask if with_mask else NoMask)().eval()


def export_graph(model: Any, path: Path, *, with_mask: bool, opset: int, dynamo: bool,
                 input_name: str = "input_values", example: np.ndarray | None = None) -> None:
    """Trace ``model`` on an example input [1, ..., time] (default 1 s of noise) with dynamic
    batch and time axes and write ``path``."""
    import torch

    if example is None:
        example = np.random.default_rng(0).standard_normal((1, int(EXAMPLE_SECONDS * SAMPLE_RATE)))
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    t_axis = x.dim() - 1
    args: tuple[torch.Tensor, ...] = (x,)
    names = [input_name]
    if with_mask:
        args += (torch.ones(1, x.shape[-1], dtype=torch.int64),)
        names.append("attention_mask")
    kwargs: dict[str, Any] = dict(input_names=names, output_names=["logits"], opset_version=opset)
    if dynamo:
        batch, time = torch.export.Dim("batch"), torch.export.Dim("time", min=2, max=SAMPLE_RATE * 3600)
        kwargs.update(dynamo=True, external_data=False, opset_version=max(opset, 18),
                      dynamic_shapes=[{0: batch, t_axis: time}] + ([{0: batch, 1: time}] if with_mask else []))
    else:
        axes = {input_name: {0: "batch", t_axis: "time"}, "attention_mask": {0: "batch", 1: "time"}}
        kwargs.update(dynamo=False, dynamic_axes={**{n: axes[n] for n in names}, "logits": {0: "batch"}})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; parity is checked instead
        torch.onnx.export(_logits_only(model, with_mask, input_name), args, str(path), **kwargs)


def quantize_onnx(src: Path, dst: Path, *, ops: Sequence[str], weight_type: str = "uint8",
                  keep_fp32: Sequence[str] = ()) -> None:
    """Dynamically quantise ``ops`` of ``src`` to 8-bit weights (activations quantised at run time).

    int8 weights are 7-bit (``reduce_range``) so the AVX2 u8s8 kernel cannot saturate; both weight
    types get one scale per output channel. Nodes whose name contains one of ``keep_fp32`` stay fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept = [n.name for n in onnx.load(str(src)).graph.node if any(k in n.name for k in keep_fp32)] if keep_fp32 else []

    qtype = QuantType.QUInt8 if weight_type == "uint8" else QuantType.QInt8
    # It logs a hint to run quant_pre_process first: measured, that costs ~40 s on base and
    # changes neither speed nor agreement, so the hint is muted.
    muted = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(src, dst, op_types_to_quantize=list(ops), weight_type=qtype, per_channel=True,
                         reduce_range=weight_type == "int8", nodes_to_exclude=kept)
    finally:
        logging.disable(muted)


def copy_run_files(source: str | Path, out: Path, *, model: Any, fe: Any) -> list[Path]:
    """Put the config, feature extractor and ``emovox.json`` (when present) next to the graph:
    copied from a local folder, written from the loaded model for a hub id."""
    written = []
    for name in COPIED_FILES:
        src, dst = Path(source) / name, out / name
        if src.is_file():
            if src.resolve() != dst.resolve():
                shutil.copyfile(src, dst)
            written.append(dst)
    if out / CONFIG_FILE not in written:
        model.config.save_pretrained(out)
    if out / PREPROCESSOR_FILE not in written:
        fe.save_pretrained(out)
    return written


def synthetic_waves(seconds: Sequence[float] = CHECK_SECONDS, seed: int = 0) -> list[np.ndarray]:
    """Deterministic test waves: two gliding, amplitude-modulated partials plus noise.

    Speech-like enough to move every layer of the encoder, and reproducible without audio files.
    """
    rng = np.random.default_rng(seed)
    waves = []
    for i, dur in enumerate(seconds):
        t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 110.0 + 40.0 * i + 30.0 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        env = 0.5 + 0.5 * np.sin(2 * np.pi * (2.0 + i) * t) ** 2
        wave = env * (np.sin(phase) + 0.4 * np.sin(3.1 * phase)) + 0.05 * rng.standard_normal(t.size)
        waves.append((0.3 * wave).astype(np.float32))
    return waves


def encode(fe: Any, wave: np.ndarray, family: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Featurize one wave exactly as the predictor does (batch of 1); the mask only if the model takes one."""
    values = family.featurize(fe, wave)[None]
    if not family.uses_attention_mask(fe):
        return values, None
    return values, np.ones((1, values.shape[-1]), dtype=np.int64)


def parity(model: Any, clf: "OnnxClassifier", fe: Any, waves: Sequence[np.ndarray], *,
           onnx_fe: Any = None) -> tuple[float, float, float]:
    """Compare torch and ONNX on each wave, one clip at a time; ``onnx_fe`` (default ``fe``) makes the
    ONNX side's inputs, so an export is checked with the numpy front end the runtime uses.

    Returns:
        ``(max_prob_diff, max_logit_diff, top1_agreement)``.
    """
    import torch

    family = family_of(model)
    prob_diff = logit_diff = 0.0
    agree = 0
    for wave in waves:
        values, mask = encode(fe, wave, family)
        with torch.inference_mode():
            ref = model(
                **{family.input_name: torch.from_numpy(values)},
                attention_mask=None if mask is None else torch.from_numpy(mask),
            ).logits.float().numpy()
        got = clf.logits(*(encode(onnx_fe, wave, family) if onnx_fe is not None else (values, mask)))
        logit_diff = max(logit_diff, float(np.abs(got - ref).max()))
        prob_diff = max(prob_diff, float(np.abs(softmax(got) - softmax(ref)).max()))
        agree += int(got.argmax(-1)[0] == ref.argmax(-1)[0])
    return prob_diff, logit_diff, agree / max(len(waves), 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class OnnxClassifier:
    """An exported classifier run by onnxruntime: waves in, logits out, like the torch model.

    Attributes:
        path: The export directory.
        config: The Hugging Face config (``id2label``, ``label2id``).
        uses_attention_mask: Whether the graph takes ``attention_mask``.
        session: The onnxruntime session.
    """

    def __init__(self, path: Path, session: Any, config: Any) -> None:
        self.path = path
        self.session = session
        self.config = config
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.uses_attention_mask = "attention_mask" in self.input_names

    @classmethod
    def from_dir(cls, path: str | Path, *, threads: int | None = None) -> "OnnxClassifier":
        """Open an export directory.

        Args:
            path: A directory written by ``export_onnx``.
            threads: Intra-op threads; default ``os.cpu_count()``.

        Raises:
            BadRunDir: the directory, its ``model.onnx`` or its ``config.json`` is missing or
                does not load.
        """
        path = Path(path)
        hint = f"an ONNX export; run `emovox export RUN --out {path}` to make one"
        _require_files(path, (MODEL_FILE, CONFIG_FILE), hint)
        return cls(path, _session(path / MODEL_FILE, threads), _load_config(path))

    def logits(self, input_values: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        """Logits ``[B, C]`` for model inputs ``[B, ..., T]`` (one unbatched input is batch 1).

        A mask is built from ones when the graph needs one and none is given; a mask given to a
        graph without one is ignored, as the torch predictor ignores it for such models.
        """
        rank = len(self.session.get_inputs()[0].shape)
        values = np.asarray(input_values, dtype=np.float32)
        values = np.ascontiguousarray(values[None] if values.ndim == rank - 1 else values)
        feed = {self.input_names[0]: values}
        if self.uses_attention_mask:
            shape = (values.shape[0], values.shape[-1])
            mask = np.ones(shape, np.int64) if attention_mask is None else np.atleast_2d(attention_mask)
            if mask.shape != shape:
                raise ValueError(f"attention_mask shape {mask.shape} != inputs' (batch, time) {shape}")
            feed["attention_mask"] = np.ascontiguousarray(mask, dtype=np.int64)
        return self.session.run(["logits"], feed)[0]


def _session(model_path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session with full graph optimisation.

    Raises:
        BadRunDir: onnxruntime cannot read the model.
    """
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    ort_errors = (ort_state.Fail, ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.NoSuchFile)
    try:
        return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    except ort_errors as exc:
        raise BadRunDir(f"cannot load {model_path}: {str(exc).splitlines()[0]}; re-run `emovox export`") from None


def _load_config(path: Path) -> JsonConfig:
    """The export's config.json, read without transformers (the runtime install has none)."""
    from ..models.source import read_config_dict

    return JsonConfig(read_config_dict(str(path)))
