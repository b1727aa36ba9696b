"""``emovox export --conversation``: the conversation path's models written into an export
(``OUT/conversation/``, see ``voice_models``), so that the runtime install runs them from the folder."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

from .speakers import PARTIAL_FRAMES, voice_encoder
from .voice_models import BUNDLE, SPEAKER_FILE, SPEAKER_MEL_FILE, VAD_FILE, vad_model_path


def update_bundle(out: str | Path, conversation: bool) -> list[Path]:
    """Write the bundle when ``conversation``; otherwise remove a stale one from an earlier export."""
    if conversation:
        return write_bundle(out)
    shutil.rmtree(Path(out) / BUNDLE, ignore_errors=True)
    return []


def write_bundle(out: str | Path) -> list[Path]:
    """``OUT/conversation/``: the detector copied from silero-vad's wheel, the GE2E speaker encoder
    exported to ONNX (a batch of 1.6 s mel partials -> L2-normalised 256-d embeddings), its mel
    filter bank as ``.npy``. Needs the full install and requirements/conversation.txt.

    Raises:
        BadConfig: silero-vad or Resemblyzer is not installed.
    """
    import torch

    folder = Path(out) / BUNDLE
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vad_model_path(None), folder / VAD_FILE)
    enc = voice_encoder(None)
    example = torch.rand(2, PARTIAL_FRAMES, enc.mel_filters.shape[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter; tests hold the graph to the torch module at other batch sizes
        torch.onnx.export(enc.net, (example,), str(folder / SPEAKER_FILE), input_names=["mels"],
                          output_names=["embeddings"], dynamic_axes={"mels": {0: "batch"}, "embeddings": {0: "batch"}},
                          opset_version=17, dynamo=False)
    np.save(folder / SPEAKER_MEL_FILE, enc.mel_filters)
    return [folder / VAD_FILE, folder / SPEAKER_FILE, folder / SPEAKER_MEL_FILE]
