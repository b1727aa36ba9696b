"""The conversation path's two pretrained models as files: silero-vad's speech detector and
Resemblyzer's GE2E speaker encoder.

The full install reads them from their registry packages (requirements/conversation.txt). Both
packages import torch, so the runtime install (no torch) cannot; ``emovox export RUN --out EXPORT
--conversation`` therefore writes both into ``EXPORT/conversation/`` — the detector's ONNX graph as
silero-vad ships it, the speaker encoder exported to ONNX beside its mel filter bank — and an
export holding them runs ``predict --segment vad --speakers`` and the server's ``segments=vad`` with
onnxruntime and numpy alone. An export scores its conversations with these files in either
install, so both give the same rows.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

from ..errors import BadConfig

BUNDLE = "conversation"
VAD_FILE = "vad.onnx"
SPEAKER_FILE = "speaker_encoder.onnx"
SPEAKER_MEL_FILE = "speaker_mel_filters.npy"
# silero-vad's sequence model (one ONNX call per 16 s block of 32 ms frames, bit-exact with its
# streaming model), inside the wheel's data folder
SILERO_SEQUENCE_ONNX = "silero_vad_16k_sequence.onnx"
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements/conversation.txt"


def bundle_of(refs: Sequence[str | Path]) -> Path | None:
    """The first model folder among ``refs`` that holds a conversation bundle, if any."""
    for ref in refs:
        folder = Path(ref) / BUNDLE
        if (folder / VAD_FILE).is_file():
            return folder
    return None


def vad_model_path(bundle: Path | None) -> Path:
    """The detector's ONNX file: the bundle's, else the one inside the installed silero-vad wheel
    (found without importing the package, whose ``__init__`` imports torch).

    Raises:
        BadConfig: neither is there; the message says how to get one.
    """
    if bundle is not None and (bundle / VAD_FILE).is_file():
        return bundle / VAD_FILE
    spec = importlib.util.find_spec("silero_vad")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / SILERO_SEQUENCE_ONNX
        if path.is_file():
            return path
    raise BadConfig("--segment vad needs silero-vad's detector: score an export made with `emovox export RUN "
                    f"--out DIR --conversation`, or {INSTALL_HINT}")


def speaker_files(bundle: Path | None) -> tuple[Path, Path] | None:
    """The bundle's speaker encoder graph and mel filter bank, when it has them."""
    if bundle is None:
        return None
    files = (bundle / SPEAKER_FILE, bundle / SPEAKER_MEL_FILE)
    return files if all(f.is_file() for f in files) else None


def onnx_session(path: Path) -> Any:
    """A one-thread CPU onnxruntime session (the detector and the speaker encoder are small)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
