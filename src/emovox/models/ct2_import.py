"""Import a CTranslate2 Whisper model (e.g. faster-whisper's) as a transformers Whisper model folder.

``model.bin`` is parsed with numpy, as ``ctranslate2/specs/model_spec.py`` writes it; the weights are mapped
back as the inverse of ``ctranslate2.converters.transformers.WhisperLoader``. ctranslate2 is not needed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import BadModel

SPEC_NAME, SPEC_REVISION = "WhisperSpec", 3
BINARY_VERSIONS = (4, 5, 6)  # dtype id + byte count per variable and aliases since version 4
# Type ids in the order of ctranslate2's DataType enum (include/ctranslate2/types.h).
DTYPES: dict[int, np.dtype] = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"),
                               3: np.dtype("<i4"), 4: np.dtype("<f2"), 5: np.dtype("<u2")}
BFLOAT16 = 5
PART_RE = re.compile(r"^model\.bin\.part(\d+)$")
VOCAB_NAMES = ("vocabulary.json", "vocabulary.txt")


@dataclass
class _Found:
    """The files of one CTranslate2 model, gathered over all sources."""

    model: list[Path]
    config: Path | None = None
    tokenizer: Path | None = None
    vocabulary: Path | None = None


class _PartReader:
    """Reads the parts of a (possibly split) model.bin as one stream, one part open at a time."""

    def __init__(self, parts: list[Path]):
        self.parts, self.index, self.pos = parts, 0, 0
        self.total = sum(p.stat().st_size for p in parts)
        self.name = str(parts[0]) if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} part(s))"
        self.handle: BinaryIO = open(parts[0], "rb")  # noqa: SIM115 - closed by read() and _read_model

    def read(self, n: int, what: str) -> bytes:
        """Read exactly ``n`` bytes across parts; BadModel if they end first (truncated, or a last part missing)."""
        chunks, need = [], n
        while need:
            chunk = self.handle.read(need)
            chunks.append(chunk)
            need -= len(chunk)
            if need and self.index + 1 < len(self.parts):
                self.handle.close()
                self.index += 1
                self.handle = open(self.parts[self.index], "rb")  # noqa: SIM115
            elif need:
                raise BadModel(f"{self.name}: truncated: ends at byte {self.total} while reading {what} "
                                f"({n} bytes wanted at byte {self.pos}); is the file or a part missing?")
        self.pos += n
        return b"".join(chunks)

    def unpack(self, fmt: str, what: str) -> tuple:
        """Read and unpack one little-endian struct."""
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt), what))

    def string(self, what: str) -> str:
        """Read a length-prefixed, NUL-terminated UTF-8 string."""
        (size,) = self.unpack("H", what)
        raw = self.read(size, what)
        try:
            if raw[-1:] == b"\0":
                return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            pass
        raise BadModel(f"{self.name}: corrupt string in {what} at byte {self.pos - size}")


def _source_root(source: str | Path) -> Path:
    """The source path's folder, or an installed package's folder; BadModel if neither exists."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    name, spec = str(source), None
    try:
        if re.fullmatch(r"[A-Za-z_][\w.-]*", name):
            spec = importlib.util.find_spec(name.replace("-", "_"))
    except (ImportError, ValueError):
        pass
    if spec is not None and (spec.submodule_search_locations or spec.origin):
        return Path(next(iter(spec.submodule_search_locations or [Path(spec.origin).parent])))
    raise BadModel(f"source {name!r}: not a folder and no installed Python package has that name")


def _one(paths: list[Path], what: str) -> Path | None:
    """The one file among ``paths`` (identical copies count once); BadModel if they differ."""
    distinct: list[Path] = []
    for path in paths:
        if not any(path.read_bytes() == seen.read_bytes() for seen in distinct):
            distinct.append(path)
    if len(distinct) > 1:
        raise BadModel(f"several different {what} found: {', '.join(map(str, distinct))}; pass one model")
    return distinct[0] if distinct else None


def _find_files(sources: Sequence[str | Path]) -> _Found:
    """Search all sources together for model.bin (or its parts), config, tokenizer and vocabulary.

    Raises:
        BadModel: no model, several models, a missing part or no tokenizer.json.
    """
    roots = [_source_root(s) for s in sources]
    whole = sorted({p.resolve() for r in roots for p in r.rglob("model.bin") if p.is_file()})
    parts = {p.resolve() for r in roots for p in r.rglob("model.bin.part*") if PART_RE.match(p.name)}
    where = ", ".join(map(str, roots))
    if len(whole) + bool(parts) > 1:
        raise BadModel(f"several models found in {where}: {', '.join(map(str, whole + sorted(parts)))}")
    if not whole and not parts:
        raise BadModel(f"no model.bin or model.bin.partN found in {where}")
    numbered: dict[int, Path] = {}
    for part in parts:
        num = int(PART_RE.match(part.name).group(1))
        if num in numbered:
            raise BadModel(f"part {num} found twice: {numbered[num]} and {part}")
        numbered[num] = part
    missing = sorted(set(range(1, max(numbered, default=0) + 1)) - set(numbered))
    if missing:
        raise BadModel(f"model.bin.part{missing[0]} is missing (found parts {sorted(numbered)} in {where})")
    found = _Found(model=whole or [numbered[i] for i in sorted(numbered)])
    dirs = {p.parent for p in found.model}
    found.config = _one([d / "config.json" for d in dirs if (d / "config.json").is_file()], "config.json")
    found.tokenizer = _one([d / "tokenizer.json" for d in dirs if (d / "tokenizer.json").is_file()],
                           "tokenizer.json")
    found.vocabulary = next((d / n for d in sorted(dirs) for n in VOCAB_NAMES if (d / n).is_file()), None)
    if found.tokenizer is None:
        raise BadModel(f"no tokenizer.json next to {found.model[0]}; it is needed to build the tokenizer")
    return found


def _to_array(raw: bytes, dtype_id: int, shape: tuple[int, ...]) -> np.ndarray:
    """Decode one variable: floats become float32, integers keep their type."""
    data = np.frombuffer(raw, dtype=DTYPES[dtype_id]).reshape(shape)
    if dtype_id == BFLOAT16:
        return (data.astype(np.uint32) << 16).view(np.float32)
    return data.astype(np.float32) if data.dtype.kind == "f" else data.copy()


def _read_variable(reader: _PartReader) -> tuple[str, np.ndarray]:
    """Read one variable record; BadModel on an unknown dtype or a byte count other than shape x dtype."""
    name = reader.string("a variable name")
    (rank,) = reader.unpack("B", f"the rank of {name}")
    shape = reader.unpack(f"{rank}I", f"the shape of {name}")
    dtype_id, nbytes = reader.unpack("BI", f"the dtype of {name}")
    if dtype_id not in DTYPES:
        raise BadModel(f"{reader.name}: variable {name} has unknown dtype id {dtype_id}")
    expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype_id].itemsize
    if nbytes != expected:
        raise BadModel(f"{reader.name}: variable {name} has {nbytes} bytes but shape {list(shape)} "
                        f"x dtype {DTYPES[dtype_id]} needs {expected}")
    return name, _to_array(reader.read(nbytes, f"the data of {name}"), dtype_id, shape)


def _read_model(parts: list[Path], progress: bool) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 Whisper model.bin (streamed over its parts) into named arrays.

    Raises:
        BadModel: wrong version, not a Whisper spec, a corrupt variable, truncation or trailing bytes.
    """
    reader = _PartReader(parts)
    try:
        (version,) = reader.unpack("I", "the binary version")
        if version not in BINARY_VERSIONS:
            raise BadModel(f"{reader.name}: not a CTranslate2 model.bin this importer reads "
                            f"(binary version {version}, expected one of {list(BINARY_VERSIONS)})")
        spec = reader.string("the spec name")
        (revision,) = reader.unpack("I", "the spec revision")
        if spec != SPEC_NAME or revision != SPEC_REVISION:
            raise BadModel(f"{reader.name}: spec {spec!r} revision {revision} is not a Whisper model "
                            f"({SPEC_NAME!r} revision {SPEC_REVISION})")
        (count,) = reader.unpack("I", "the variable count")
        tensors: dict[str, np.ndarray] = {}
        from tqdm.auto import tqdm

        for _ in tqdm(range(count), desc="read model.bin", unit="var", disable=not progress):
            tensors.update([_read_variable(reader)])
        (n_alias,) = reader.unpack("I", "the alias count")
        for _ in range(n_alias):
            alias, target = reader.string("an alias"), reader.string("an alias target")
            if target not in tensors:
                raise BadModel(f"{reader.name}: alias {alias} points to unknown variable {target}")
            tensors[alias] = tensors[target]
        if reader.pos != reader.total:
            raise BadModel(f"{reader.name}: {reader.total - reader.pos} unexpected bytes after the model")
        return tensors
    finally:
        reader.handle.close()


def _dequantize(tensors: dict[str, np.ndarray]) -> None:
    """Turn int8/int16 weights with a ``weight_scale`` back into float32, in place."""
    for name in [n for n in tensors if n.endswith("/weight_scale")]:
        weight_name = name[: -len("_scale")]
        weight, scale = tensors[weight_name], tensors.pop(name).astype(np.float32)
        scale = scale.reshape((-1,) + (1,) * (weight.ndim - 1)) if scale.ndim else scale
        tensors[weight_name] = weight.astype(np.float32) / scale


def _get(tensors: dict[str, np.ndarray], name: str, source: str) -> np.ndarray:
    """A required variable; BadModel if it is absent."""
    if name not in tensors:
        raise BadModel(f"{source}: variable {name} is missing; not a complete Whisper model")
    return tensors[name]


def _dims(tensors: dict[str, np.ndarray], source: str) -> dict[str, int]:
    """Model dimensions inferred from the tensor shapes; BadModel if a variable they need is missing."""
    def layers(prefix: str) -> int:
        return len({m.group(1) for n in tensors if (m := re.match(prefix + r"/layer_(\d+)/", n))})

    conv1 = _get(tensors, "encoder/conv1/weight", source)
    return {
        "d_model": conv1.shape[0], "num_mel_bins": conv1.shape[1],
        "vocab_size": _get(tensors, "decoder/embeddings/weight", source).shape[0],
        "encoder_layers": layers("encoder"), "decoder_layers": layers("decoder"),
        "encoder_attention_heads": int(_get(tensors, "encoder/num_heads", source)),
        "decoder_attention_heads": int(_get(tensors, "decoder/num_heads", source)),
        "encoder_ffn_dim": _get(tensors, "encoder/layer_0/ffn/linear_0/weight", source).shape[0],
        "decoder_ffn_dim": _get(tensors, "decoder/layer_0/ffn/linear_0/weight", source).shape[0],
        "max_source_positions": _get(tensors, "encoder/position_encodings/encodings", source).shape[0],
        "max_target_positions": _get(tensors, "decoder/position_encodings/encodings", source).shape[0],
    }


def _hf_names(side: str, i: int, self_attn: bool) -> dict[str, str]:
    """CTranslate2 -> transformers names inside one layer (attention linears are handled apart)."""
    ct, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
    names = {f"{ct}/self_attention/layer_norm/": f"{hf}.self_attn_layer_norm.",
             f"{ct}/ffn/layer_norm/": f"{hf}.final_layer_norm.",
             f"{ct}/ffn/linear_0/": f"{hf}.fc1.", f"{ct}/ffn/linear_1/": f"{hf}.fc2."}
    if not self_attn:
        names[f"{ct}/attention/layer_norm/"] = f"{hf}.encoder_attn_layer_norm."
    return names


def _expected_shapes(dims: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """The shape every variable must have for these dimensions."""
    d = dims["d_model"]
    out = {"encoder/conv1/weight": (d, dims["num_mel_bins"], 3), "encoder/conv2/weight": (d, d, 3),
           "encoder/position_encodings/encodings": (dims["max_source_positions"], d),
           "decoder/position_encodings/encodings": (dims["max_target_positions"], d),
           "decoder/embeddings/weight": (dims["vocab_size"], d),
           "decoder/projection/weight": (dims["vocab_size"], d)}
    for side in ("encoder", "decoder"):
        ffn = dims[f"{side}_ffn_dim"]
        for i in range(dims[f"{side}_layers"]):
            ct = f"{side}/layer_{i}"
            out.update({f"{ct}/ffn/linear_0/weight": (ffn, d), f"{ct}/ffn/linear_0/bias": (ffn,),
                        f"{ct}/ffn/linear_1/weight": (d, ffn), f"{ct}/self_attention/linear_0/weight": (3 * d, d),
                        f"{ct}/self_attention/linear_0/bias": (3 * d,),
                        f"{ct}/self_attention/linear_1/weight": (d, d)})
            if side == "decoder":
                out.update({f"{ct}/attention/linear_0/weight": (d, d), f"{ct}/attention/linear_1/weight": (2 * d, d),
                            f"{ct}/attention/linear_1/bias": (2 * d,), f"{ct}/attention/linear_2/weight": (d, d)})
    return out


def _check_shapes(tensors: dict[str, np.ndarray], dims: dict[str, int], source: str) -> None:
    """Every variable must fit the dimensions; 1-D vectors default to (d_model,).

    Raises:
        BadModel: a variable is missing or has the wrong shape.
    """
    expected = _expected_shapes(dims)
    for name, shape in expected.items():
        if name == "decoder/projection/weight" and name not in tensors:
            continue  # absent: tied to the embeddings, as CTranslate2 aliases it
        if tuple(_get(tensors, name, source).shape) != shape:
            raise BadModel(f"{source}: variable {name} has shape {list(tensors[name].shape)}, expected "
                            f"{list(shape)} for d_model={dims['d_model']}")
    for name, value in tensors.items():
        if value.ndim == 1 and name not in expected and value.shape != (dims["d_model"],):
            raise BadModel(f"{source}: variable {name} has shape {list(value.shape)}, expected "
                            f"[{dims['d_model']}]")
    if dims["d_model"] % dims["encoder_attention_heads"] or dims["d_model"] % dims["decoder_attention_heads"]:
        raise BadModel(f"{source}: d_model {dims['d_model']} is not divisible by the number of heads")


def _state_dict(tensors: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, Any]:
    """Map CTranslate2 variables to WhisperForConditionalGeneration parameters (float32 torch)."""
    import torch

    sd: dict[str, np.ndarray] = {}
    fixed = {"encoder/conv1/": "model.encoder.conv1.", "encoder/conv2/": "model.encoder.conv2.",
             "encoder/layer_norm/": "model.encoder.layer_norm.", "decoder/layer_norm/": "model.decoder.layer_norm."}
    for side in ("encoder", "decoder"):
        for i in range(dims[f"{side}_layers"]):
            fixed.update(_hf_names(side, i, side == "encoder"))
            ct, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            _split_attention(sd, tensors, f"{ct}/self_attention/linear_0/", f"{hf}.self_attn.", ("q", "k", "v"))
            _split_attention(sd, tensors, f"{ct}/self_attention/linear_1/", f"{hf}.self_attn.", ("out",))
            if side == "decoder":
                _split_attention(sd, tensors, f"{ct}/attention/linear_0/", f"{hf}.encoder_attn.", ("q",))
                _split_attention(sd, tensors, f"{ct}/attention/linear_1/", f"{hf}.encoder_attn.", ("k", "v"))
                _split_attention(sd, tensors, f"{ct}/attention/linear_2/", f"{hf}.encoder_attn.", ("out",))
    for ct, hf in fixed.items():
        is_norm = ct.endswith("layer_norm/")
        for a, b in (("gamma", "weight"), ("beta", "bias")) if is_norm else (("weight", "weight"), ("bias", "bias")):
            sd[hf + b] = tensors[ct + a]
    sd["model.encoder.embed_positions.weight"] = tensors["encoder/position_encodings/encodings"]
    sd["model.decoder.embed_positions.weight"] = tensors["decoder/position_encodings/encodings"]
    sd["model.decoder.embed_tokens.weight"] = tensors["decoder/embeddings/weight"]
    sd["proj_out.weight"] = tensors.get("decoder/projection/weight", tensors["decoder/embeddings/weight"])
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def _split_attention(sd: dict[str, np.ndarray], tensors: dict[str, np.ndarray], ct: str, hf: str,
                     which: tuple[str, ...]) -> None:
    """Split a fused q/k/v (or copy an out) projection; k has no bias in Whisper (CT2 stores zeros)."""
    pieces = zip(which, np.split(tensors[ct + "weight"], len(which)), np.split(tensors[ct + "bias"], len(which)))
    for key, weight, bias in pieces:
        sd[f"{hf}{key}_proj.weight"] = weight
        if key != "k":  # a key bias only shifts every score of a query equally: softmax ignores it
            sd[f"{hf}{key}_proj.bias"] = bias


def _load_json(path: Path) -> Any:
    """Read a JSON file; BadModel if it is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModel(f"{path}: not readable JSON ({err})") from err


def _vocabulary(path: Path | None) -> list[str] | None:
    """The CTranslate2 vocabulary (one token a line, or a JSON list), if present."""
    if path is None or path.suffix == ".json":
        return path and _load_json(path)
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.stat().st_size else []


def _check_config(ct2: dict[str, Any], dims: dict[str, int], vocab: list[str] | None, path: str) -> None:
    """The CTranslate2 config and vocabulary must fit the tensors.

    Raises:
        BadModel: a token id, alignment head, mel bin count or vocabulary size disagrees with the tensors.
    """
    if not isinstance(ct2, dict):
        raise BadModel(f"{path}: expected a JSON object")
    ids = [i for key in ("suppress_ids", "suppress_ids_begin", "lang_ids") for i in ct2.get(key) or []]
    if any(not isinstance(i, int) or not 0 <= i < dims["vocab_size"] for i in ids):
        raise BadModel(f"{path}: token ids outside the model's vocabulary of {dims['vocab_size']}")
    for layer, head in ct2.get("alignment_heads") or []:
        if not (0 <= layer < dims["decoder_layers"] and 0 <= head < dims["decoder_attention_heads"]):
            raise BadModel(f"{path}: alignment head {[layer, head]} outside the decoder's "
                            f"{dims['decoder_layers']} layers x {dims['decoder_attention_heads']} heads")
    if ct2.get("num_mel_bins", dims["num_mel_bins"]) != dims["num_mel_bins"]:
        raise BadModel(f"{path}: num_mel_bins {ct2['num_mel_bins']} but conv1 takes {dims['num_mel_bins']}")
    if vocab is not None and len(vocab) != dims["vocab_size"]:
        raise BadModel(f"vocabulary has {len(vocab)} tokens but the embeddings have {dims['vocab_size']} rows")


def _tokenizer(found: _Found, vocab: list[str] | None, vocab_size: int) -> Any:
    """WhisperTokenizerFast from tokenizer.json, with timestamp tokens added up to the vocabulary size.

    Raises:
        BadModel: the tokenizer disagrees with the vocabulary or lacks Whisper's special tokens.
    """
    from tokenizers import AddedToken
    from transformers import WhisperTokenizerFast

    data = _load_json(found.tokenizer)
    specials = [t["content"] for t in data.get("added_tokens", []) if t.get("special")]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(found.tokenizer, Path(tmp) / "tokenizer.json")
        tok = WhisperTokenizerFast.from_pretrained(tmp, additional_special_tokens=specials[1:],
                                                   pad_token="<|endoftext|>")
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|transcribe|>"):
        if token not in tok.get_vocab():
            raise BadModel(f"{found.tokenizer}: no {token} token; not a Whisper tokenizer")
    if vocab is not None:
        wrong = [t for t, i in tok.get_vocab().items() if i >= len(vocab) or vocab[i] != t]
        if wrong:
            raise BadModel(f"{found.tokenizer}: token {wrong[0]!r} has another id than in {found.vocabulary}")
        extra = vocab[len(tok):]
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra])
    if len(tok) > vocab_size:
        raise BadModel(f"{found.tokenizer}: {len(tok)} tokens but the model's vocabulary has {vocab_size}")
    return tok


def _configs(dims: dict[str, int], ct2: dict[str, Any], tok: Any) -> tuple[Any, Any]:
    """Build the WhisperConfig and GenerationConfig."""
    from transformers import GenerationConfig, WhisperConfig

    ids = tok.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    tokens = {"decoder_start_token_id": sot, "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot}
    suppress = {"suppress_tokens": ct2.get("suppress_ids") or [],
                "begin_suppress_tokens": ct2.get("suppress_ids_begin") or [eot]}
    config = WhisperConfig(**dims, **tokens, **suppress, scale_embedding=False, activation_function="gelu",
                           architectures=["WhisperForConditionalGeneration"])
    lang_ids = ct2.get("lang_ids") or []
    heads = ct2.get("alignment_heads") or [[i, h] for i in range(dims["decoder_layers"] // 2, dims["decoder_layers"])
                                           for h in range(dims["decoder_attention_heads"])]
    multilingual = dims["vocab_size"] >= 51865  # as in transformers: English-only models have 51864
    languages = {} if not multilingual else {  # English-only: no language/task tokens in the prompt
        "lang_to_id": {tok.convert_ids_to_tokens(i): i for i in lang_ids}, "task": "transcribe",
        "task_to_id": {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}}
    generation = GenerationConfig(
        **tokens, **suppress, **languages, max_length=dims["max_target_positions"], is_multilingual=multilingual,
        alignment_heads=[list(h) for h in heads], no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"), max_initial_timestamp_index=50)
    return config, generation


def _save(out: Path, state: dict[str, Any], config: Any, generation: Any, tok: Any, progress: bool) -> None:
    """Write model, processor and configs into ``out`` (permissions by the umask); BadModel on a weight mismatch."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise BadModel(f"weights do not fit WhisperForConditionalGeneration: missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}")
    model.generation_config = generation
    was_enabled = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()
    try:
        model.eval().save_pretrained(out, safe_serialization=True)
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    # saved apart (WhisperProcessor.from_pretrained reads both): 4.x processors refuse a fast tokenizer
    features.save_pretrained(out)
    tok.save_pretrained(out)
    os.umask(umask := os.umask(0))
    out.chmod(0o777 & ~umask)
    for path in out.iterdir():
        path.chmod(0o666 & ~umask)


def import_ct2(*, sources: Sequence[str | Path], out: str | Path, progress: bool = False) -> Path:
    """Convert a CTranslate2 Whisper model into a transformers Whisper model folder.

    Args:
        sources: CTranslate2 model folders or names of installed packages holding one; all are
            searched together, so a model split into ``model.bin.partN`` over packages works.
        out: the folder to write (must not exist or be empty): ``model.safetensors`` (float32),
            ``config.json``, ``generation_config.json`` and the processor files.
        progress: show a tqdm bar while reading the weights.

    Returns:
        The output folder, loadable with ``WhisperForConditionalGeneration.from_pretrained``.

    Raises:
        BadModel: a source is missing, a model file is truncated, split into incomplete parts,
            corrupt, not a Whisper model, or disagrees with its config, vocabulary or tokenizer;
            or ``out`` is not empty.
    """
    out = Path(out)
    if not sources:
        raise BadModel("no sources given: pass CTranslate2 Whisper folders or package names")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadModel(f"{out}: output exists and is not an empty folder")
    found = _find_files(sources)
    name = str(found.model[0]) if len(found.model) == 1 else ", ".join(map(str, found.model))
    tensors = _read_model(found.model, progress)
    _dequantize(tensors)
    dims = _dims(tensors, name)
    _check_shapes(tensors, dims, name)
    ct2 = _load_json(found.config) if found.config else {}
    vocab = _vocabulary(found.vocabulary)
    _check_config(ct2, dims, vocab, str(found.config or name))
    tok = _tokenizer(found, vocab, dims["vocab_size"])
    config, generation = _configs(dims, ct2, tok)
    state = _state_dict(tensors, dims)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _save(tmp, state, config, generation, tok, progress)
        if out.exists():
            out.rmdir()
        shutil.move(str(tmp), str(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
