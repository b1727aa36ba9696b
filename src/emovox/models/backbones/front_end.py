"""Front ends in numpy for exported models, so the runtime install needs no transformers (nor torch).

An export folder's ``preprocessor_config.json`` says which feature extractor the model was trained
with; :func:`front_end_for` rebuilds it here, callable as emovox's families call the transformers
classes (``fe(wave, sampling_rate=16000, ...)`` -> ``{"input_values" | "input_features": [x]}``),
with the same attributes (``emovox_trim_silence_db``, Whisper's window), so ``featurize`` needs no
change. Both compute what transformers computes for one clip, within 1e-5 (tests/models):

- ``Wav2Vec2FeatureExtractor``: the clip in float32, zero mean and unit variance when
  ``do_normalize``, as ``zero_mean_unit_var_norm`` does it;
- ``WhisperFeatureExtractor``: the log-mel spectrogram of its torch path (centred STFT with
  reflect padding, power, the last frame dropped, mel filters, log10 floored 8 decades under the
  clip's peak, ``(x + 4) / 4``), with the mel filter bank and the window that export saves beside
  the graph (``mel_filters.npy``, ``stft_window.npy``), so not even the filter design is redone.
  It runs in float64: within 1e-6 of an exact reference (an explicit DFT) on RAVDESS clips, where
  transformers rounds in float32 (its torch path, what the full install runs, is 2.6e-5 from the
  exact values, its numpy path 1.4e-5), so it equals either within 5e-5 and the scores of an
  export within 1e-4 (tests/inference/test_runtime.py, benchmarks/RESULTS.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BadRunDir

PREPROCESSOR_FILE = "preprocessor_config.json"
MEL_FILTERS_FILE = "mel_filters.npy"
WINDOW_FILE = "stft_window.npy"


class _Settings:
    """Every key of ``preprocessor_config.json`` as an attribute (emovox's flags among them)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.__dict__.update(settings)


class WaveNormaliser(_Settings):
    """``Wav2Vec2FeatureExtractor`` for one clip: float32, normalised per clip when ``do_normalize``."""

    do_normalize = True
    return_attention_mask = False

    def __call__(self, wave: np.ndarray, **_: Any) -> dict[str, list[np.ndarray]]:
        x = np.asarray(wave, dtype=np.float32)
        if self.do_normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return {"input_values": [x]}


class WhisperLogMel(_Settings):
    """``WhisperFeatureExtractor`` for one clip at its own length (emovox never pads to 30 s here:
    ``pad_to_window`` runs pad the wave before calling, as with transformers)."""

    n_fft = 400
    hop_length = 160

    def __init__(self, settings: dict[str, Any], mel_filters: np.ndarray, window: np.ndarray) -> None:
        super().__init__(settings)
        self.mel_filters = np.asarray(mel_filters, dtype=np.float64)  # [n_fft // 2 + 1, mels]
        self.window = np.asarray(window, dtype=np.float64)

    def __call__(self, wave: np.ndarray, **_: Any) -> dict[str, list[np.ndarray]]:
        return {"input_features": [self.log_mel(np.asarray(wave, dtype=np.float32))]}

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel frames [mels, 1 + len // hop - 1] (the last STFT frame dropped, as Whisper does)."""
        mel = power_spectrum(wave, self.n_fft, self.hop_length, self.window)[:-1] @ self.mel_filters
        log = np.log10(np.maximum(mel, 1e-10))
        log = np.maximum(log, log.max() - 8.0)
        return ((log + 4.0) / 4.0).T.astype(np.float32)


def power_spectrum(wave: np.ndarray, n_fft: int, hop: int, window: np.ndarray, *,
                   pad_mode: str = "reflect") -> np.ndarray:
    """Power STFT of centred frames (``n_fft // 2`` padding either side), [1 + len // hop, n_fft // 2 + 1],
    in float64."""
    x = np.pad(np.asarray(wave, dtype=np.float64), n_fft // 2, mode=pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.fft.rfft(frames * window, axis=-1)
    return spec.real**2 + spec.imag**2


def front_end_for(folder: str | Path) -> Any:
    """The numpy front end of an export folder (its ``preprocessor_config.json``).

    Another feature extractor, or a Whisper export without its saved filter bank, is loaded with
    transformers when it is installed.

    Raises:
        BadRunDir: no or unreadable settings; without transformers, a front end not computed here.
    """
    folder = Path(folder)
    path = folder / PREPROCESSOR_FILE
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadRunDir(f"{path}: cannot read the feature extractor settings ({exc}); re-run `emovox export`") from None
    kind = settings.get("feature_extractor_type", "")
    if kind == "Wav2Vec2FeatureExtractor":
        return WaveNormaliser(settings)
    files = [folder / MEL_FILTERS_FILE, folder / WINDOW_FILE]
    if kind == "WhisperFeatureExtractor" and all(f.is_file() for f in files):
        return WhisperLogMel(settings, np.load(files[0]), np.load(files[1]))
    why = (f"has no {MEL_FILTERS_FILE} (an export from before emovox computed Whisper's front end in numpy; re-run "
           f"`emovox export RUN --out {folder}`)" if kind == "WhisperFeatureExtractor" else
           f"uses feature extractor {kind or 'of unknown type'!r}, which has no numpy front end (supported: "
           "WhisperFeatureExtractor, Wav2Vec2FeatureExtractor)")
    try:  # the full install computes it with transformers, as before
        from transformers import AutoFeatureExtractor
    except ImportError:
        raise BadRunDir(f"{folder} {why}; or score it with the full install (pip install 'emovox[train]')") from None
    return AutoFeatureExtractor.from_pretrained(folder)


def save_front_end(fe: Any, out: str | Path) -> list[Path]:
    """Write what :func:`front_end_for` needs beyond ``preprocessor_config.json``: Whisper's mel
    filter bank and STFT window (exactly the arrays transformers uses), nothing for other kinds."""
    out = Path(out)
    if type(fe).__name__ != "WhisperFeatureExtractor":
        return []
    n = int(fe.n_fft)
    np.save(out / MEL_FILTERS_FILE, np.asarray(fe.mel_filters, dtype=np.float64))
    np.save(out / WINDOW_FILE, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))  # periodic Hann, as torch's
    return [out / MEL_FILTERS_FILE, out / WINDOW_FILE]
