"""ONNX export: parity with torch at lengths other than the traced one, int8, self-contained dirs."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import onnx  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
)

from emovox.errors import BadConfig, BadRunDir  # noqa: E402
from emovox.inference.export import (  # noqa: E402
    DEFAULT_QUANTIZE_OPS,
    ExportResult,
    OnnxClassifier,
    cpu_int8_note,
    export_onnx,
    synthetic_waves,
)
from emovox.labels import get_scheme  # noqa: E402
from emovox.models.presets import PRESETS, init_model  # noqa: E402

SR = 16_000


def _spread_head(run_dir: Path) -> None:
    """Give the random head large weights so logits are O(1) and differ between clips.

    A freshly initialised head gives logits ~0.02 that barely move with the input, which would
    let a broken export pass a 1e-4 tolerance.
    """
    model = AutoModelForAudioClassification.from_pretrained(run_dir)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in (model.projector, model.classifier):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 3.0 / layer.in_features**0.5)
    model.save_pretrained(run_dir)


def _torch_logits(run_dir: Path, wave: np.ndarray) -> np.ndarray:
    """Reference logits for one clip, unpadded, as the torch predictor computes them."""
    model = AutoModelForAudioClassification.from_pretrained(run_dir).eval()
    fe = AutoFeatureExtractor.from_pretrained(run_dir)
    enc = fe(wave, sampling_rate=SR, return_tensors="pt")
    if not fe.return_attention_mask:
        enc.pop("attention_mask", None)
    with torch.inference_mode():
        return model(**enc).logits.numpy()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = init_model(size="tiny", scheme=get_scheme("crema-d-21"), out=tmp_path_factory.mktemp("run"))
    _spread_head(run)
    (run / "emovox.json").write_text(json.dumps({"scheme": "crema-d-21", "seed": 0}))
    return run


@pytest.fixture(scope="module")
def tiny_export(tiny_run, tmp_path_factory) -> tuple[Path, ExportResult]:
    out = tmp_path_factory.mktemp("onnx")
    return out, export_onnx(run_dir=tiny_run, out=out)


def test_fp32_export_matches_torch_at_other_lengths(tiny_run, tiny_export):
    out, result = tiny_export
    clf = OnnxClassifier.from_dir(out, threads=1)
    fe = AutoFeatureExtractor.from_pretrained(out)
    assert clf.uses_attention_mask
    long_wave = synthetic_waves([3.3], seed=1)[0]  # traced on 1 s
    enc = fe(long_wave, sampling_rate=SR, return_tensors="np")
    got = clf.logits(enc["input_values"], enc["attention_mask"])
    ref = _torch_logits(tiny_run, long_wave)
    assert got.shape == (1, 21) and got.dtype == np.float32
    assert np.abs(ref).max() > 0.5, "logits too small for the tolerance to mean anything"
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert result == ExportResult(out / "model.onnx", False, result.max_prob_diff, 1.0, 4, (), result.max_logit_diff)
    assert result.max_logit_diff < 1e-4 and result.max_prob_diff < 1e-5
    assert not (out / "model_fp32.onnx").exists()


def test_fp32_padded_batch_with_mask_matches_each_clip(tiny_run, tiny_export):
    out, _ = tiny_export
    clf = OnnxClassifier.from_dir(out, threads=1)
    fe = AutoFeatureExtractor.from_pretrained(out)
    waves = synthetic_waves([1.3, 2.7], seed=2)
    enc = fe(waves, sampling_rate=SR, return_tensors="np", padding=True)
    assert enc["attention_mask"][0].sum() < enc["attention_mask"].shape[1]  # first clip is padded
    got = clf.logits(enc["input_values"], enc["attention_mask"])
    ref = np.concatenate([_torch_logits(tiny_run, w) for w in waves])
    assert got.shape == (2, 21)
    assert np.abs(ref[0] - ref[1]).max() > 1e-2, "clips should score differently"
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_onnx_batches_side_by_side_on_one_thread_sessions_equal_one_worker(tiny_export, tmp_path):
    """With two threads, an export's batches run two at a time on a one-thread session of the same
    graph (made on first use, once), and score what one worker does on the two-thread session."""
    from emovox.inference.predict import Predictor

    out = tmp_path / "onnx"
    shutil.copytree(tiny_export[0], out)
    (out / "emovox.json").write_text(json.dumps({"scheme": get_scheme("crema-d-21").to_dict()}))
    predictor = Predictor.from_run_dir(out, threads=2)
    member = predictor.members[0]
    made = []
    lazy = member.side_logits
    member.side_logits = lambda: made.append(1) or lazy()
    waves = synthetic_waves([0.6, 0.9, 1.2, 1.5, 1.8, 2.1], seed=3)  # lengths apart: one batch each
    assert member.workers == 2
    parallel = np.stack([predictor.probs(waves) for _ in range(2)])
    assert len(made) == 2 and lazy() is lazy()  # asked once per call, the session made once
    member.workers = 1
    serial = predictor.probs(waves)
    assert len(made) == 2
    np.testing.assert_allclose(parallel, np.stack([serial, serial]), atol=1e-6)
    assert np.abs(serial - serial[0]).max() > 1e-3, "clips should score differently"


def test_int8_export_loads_and_reports_agreement(tiny_run, tmp_path):
    checks = synthetic_waves([1.0, 2.2, 3.1], seed=3)
    result = export_onnx(run_dir=tiny_run, out=tmp_path, int8=True, int8_encoder=True, check_inputs=checks)
    assert result.onnx_path == tmp_path / "model.onnx" and (tmp_path / "model_fp32.onnx").is_file()
    assert result.int8 and result.quantized_ops == DEFAULT_QUANTIZE_OPS and result.n_checked == 3
    assert 0.0 <= result.top1_agreement <= 1.0
    assert 0.0 < result.max_prob_diff < 0.2 and 0.0 < result.max_logit_diff < 1.0
    graph = onnx.load(str(result.onnx_path)).graph
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {node.op_type for node in graph.node}
    assert "ConvInteger" not in {node.op_type for node in graph.node}  # MatMul only by default
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # s8 weights on the fast path
    # the feature encoder went through as MatMuls and is quantised; its first layer stays a Conv
    assert result.matmul_encoder
    assert _quantised_encoder_matmuls(graph) == 6  # wav2vec2 has 7 conv layers
    assert any(n.op_type == "Conv" and "feature_extractor" in n.name for n in graph.node)
    clf = OnnxClassifier.from_dir(tmp_path, threads=1)
    assert clf.logits(np.zeros((2, 12_000), np.float32)).shape == (2, 21)


def _quantised_encoder_matmuls(graph) -> int:
    return sum(n.op_type == "MatMulInteger" and "feature_extractor" in n.name for n in graph.node)


def test_int8_default_keeps_encoder_convolutions_fp32(tiny_run, tmp_path):
    result = export_onnx(run_dir=tiny_run, out=tmp_path, int8=True, check_inputs=synthetic_waves([1.0, 2.2], seed=3))
    graph = onnx.load(str(result.onnx_path)).graph
    assert not result.matmul_encoder and _quantised_encoder_matmuls(graph) == 0
    assert any(t.data_type == onnx.TensorProto.UINT8 for t in graph.initializer)  # u8 weights by default
    assert not any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert sum(n.op_type == "Conv" and "feature_extractor" in n.name for n in graph.node) == 7
    assert any(n.op_type == "MatMulInteger" and "encoder/layers" in n.name for n in graph.node)


def test_out_dir_is_self_contained(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    out = tmp_path / "export"
    export_onnx(run_dir=run, out=out, check_inputs=synthetic_waves([1.0]))
    shutil.rmtree(run)
    expected = {"model.onnx", "config.json", "preprocessor_config.json", "emovox.json"}
    assert {p.name for p in out.iterdir()} == expected
    clf = OnnxClassifier.from_dir(out)
    assert clf.config.id2label == get_scheme("crema-d-21").id2label
    assert json.loads((out / "emovox.json").read_text())["scheme"] == "crema-d-21"
    assert AutoFeatureExtractor.from_pretrained(out).return_attention_mask


def test_model_without_attention_mask_exports_and_matches(tmp_path):
    """A wav2vec2-base-like model: group norm, and a feature extractor that gives no mask."""
    run = tmp_path / "run"
    arch = dict(PRESETS["tiny"], feat_extract_norm="group", do_stable_layer_norm=False)
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**arch, num_labels=4)).save_pretrained(run)
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True, return_attention_mask=False)
    fe.save_pretrained(run)
    _spread_head(run)
    result = export_onnx(run_dir=run, out=tmp_path / "onnx", check_inputs=synthetic_waves([1.0, 2.0]))
    clf = OnnxClassifier.from_dir(tmp_path / "onnx", threads=1)
    assert not clf.uses_attention_mask and clf.input_names == ("input_values",)
    assert result.max_logit_diff < 1e-4 and result.top1_agreement == 1.0
    wave = synthetic_waves([3.3], seed=4)[0]
    values = AutoFeatureExtractor.from_pretrained(run)(wave, sampling_rate=SR, return_tensors="np")["input_values"]
    np.testing.assert_allclose(clf.logits(values), _torch_logits(run, wave), atol=1e-4, rtol=0)


def test_bad_run_dirs_name_the_path_and_the_fix(tmp_path, tiny_run):
    with pytest.raises(BadRunDir, match=f"{tmp_path / 'nope'}.*not a directory"):
        export_onnx(run_dir=tmp_path / "nope", out=tmp_path / "out")
    with pytest.raises(BadRunDir, match="has no config.json"):
        export_onnx(run_dir=tmp_path, out=tmp_path / "out")
    with pytest.raises(BadRunDir, match=r"has no model\.onnx.*emovox export RUN --out"):
        OnnxClassifier.from_dir(tiny_run)
    with pytest.raises(BadConfig, match="Softmax"):
        export_onnx(run_dir=tiny_run, out=tmp_path / "out", int8=True, quantize_ops=["Softmax"])


def test_int8_note_only_on_x86_cpus_without_int8_dot_products(tmp_path):
    """`export --int8` warns where int8 cannot beat fp32 (AVX2 without VNNI/AMX), and stays quiet
    on CPUs with VNNI, on non-x86 CPUs and where /proc/cpuinfo cannot be read."""
    def cpu(flags: str) -> Path:
        p = tmp_path / f"cpuinfo{len(list(tmp_path.iterdir()))}"
        p.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        return p

    note = cpu_int8_note(cpu("fpu sse2 avx avx2 fma"))
    assert note is not None and "VNNI" in note and "fp32" in note
    assert cpu_int8_note(cpu("fpu sse2 avx avx2 fma avx512f avx512_vnni")) is None
    assert cpu_int8_note(cpu("fpu sse2 avx avx2 fma avx_vnni")) is None
    assert cpu_int8_note(cpu("fpu sse2 avx avx2 amx_tile amx_int8")) is None
    assert cpu_int8_note(tmp_path / "Features_only") is None  # missing file
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_int8_note(arm) is None
