"""Helpers that make short clips, tiny corpora, broken files and tiny models for tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from .data.audio import SAMPLE_RATE, write_audio


def test_data_dir() -> Path | None:
    """``EMOVOX_TEST_DATA`` (default ``../shared/data`` beside the project), or None when absent."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    path = Path(os.environ.get("EMOVOX_TEST_DATA", default))
    return path if (path / "ravdess16k").is_dir() else None


def tone(seconds: float, *, freq: float = 220.0, sr: int = SAMPLE_RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A harmonic tone with a little noise: (n,) or (n, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5)) * 0.2
    wave = (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave * (0.5 + 0.5 * c) for c in range(channels)], axis=1)


def write_tone(path: str | Path, seconds: float = 1.0, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = kwargs.get("sr", SAMPLE_RATE)
    sf.write(str(path), tone(seconds, **kwargs), sr, subtype="PCM_16")
    return path


def make_crema_corpus(root: str | Path, *, actors: Iterable[int] = range(1001, 1007),
                      emotions: Iterable[str] = ("ANG", "HAP", "NEU", "SAD"), seconds: float = 0.6) -> list[Path]:
    """A small CREMA-D-named corpus of distinct tones (pitch per emotion, so it is learnable)."""
    root = Path(root)
    pitch = {"ANG": 300.0, "HAP": 260.0, "NEU": 180.0, "SAD": 140.0, "DIS": 200.0, "FEA": 330.0}
    out = []
    for a in actors:
        for k, emo in enumerate(emotions):
            for j, sentence in enumerate(("DFA", "IEO")):
                path = root / f"{a}_{sentence}_{emo}_XX.wav"
                write_tone(path, seconds + 0.1 * j, freq=pitch[emo] * (1 + (a % 7) / 50), seed=a * 100 + k * 10 + j)
                out.append(path)
    return out


def _emotion_pitch(code: str) -> float:
    """A pitch per emotion code, so generated corpora are learnable and codes stay apart."""
    return 120.0 + (sum(map(ord, code)) * 37) % 240


EMOVO_SPEAKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
EMOVO_CODES = ("dis", "gio", "neu", "pau", "rab", "sor", "tri")
EMOVO_SENTENCES = ("b1", "b2", "b3", "d1", "d2", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5")


def make_emovo_corpus(root: str | Path, *, speakers: Iterable[str] = EMOVO_SPEAKERS,
                      emotions: Iterable[str] = EMOVO_CODES, sentences: Iterable[str] = ("b1", "n2"),
                      ext: str = "wav", seconds: float = 0.3) -> list[Path]:
    """An EMOVO-named corpus of tones: ``SPEAKER/EMO-SPEAKER-SENTENCE.EXT`` (e.g. ``f1/dis-f1-b1.wav``)."""
    root, out = Path(root), []
    for k, spk in enumerate(speakers):
        for emo in emotions:
            for j, sen in enumerate(sentences):
                path = root / spk / f"{emo}-{spk}-{sen}.{ext}"
                write_tone(path, seconds, freq=_emotion_pitch(emo) * (1 + k / 40), seed=k * 1000 + j + len(out))
                out.append(path)
    return out


EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")


def make_emodb_corpus(root: str | Path, *, speakers: Iterable[str] = ("03", "08", "10", "13"),
                      emotions: Iterable[str] = tuple("WLEAFTN"), texts: Iterable[str] = ("a01", "b02"),
                      seconds: float = 0.3) -> list[Path]:
    """An EmoDB-named corpus of tones: ``wav/SSTTTEV.wav`` (e.g. ``wav/03a01Fa.wav``)."""
    root, out = Path(root), []
    for k, spk in enumerate(speakers):
        for emo in emotions:
            for j, text in enumerate(texts):
                path = root / "wav" / f"{spk}{text}{emo}{'ab'[j % 2]}.wav"
                write_tone(path, seconds, freq=_emotion_pitch(emo) * (1 + k / 40), seed=k * 1000 + j + len(out))
                out.append(path)
    return out


def make_iemocap_corpus(root: str | Path, *, sessions: Iterable[int] = (1, 2, 3),
                        categories: Iterable[str] = ("neu", "hap", "exc", "sad", "ang", "fru", "xxx"),
                        seconds: float = 0.3) -> list[Path]:
    """An IEMOCAP-shaped release of tones: per session one improvised dialog whose utterances
    alternate between the female and the male actor, ``SessionN/sentences/wav/DIALOG/UTT.wav``,
    with the summary lines in ``SessionN/dialog/EmoEvaluation/DIALOG.txt``."""
    root, out = Path(root), []
    for s in sessions:
        dialog = f"Ses{s:02d}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for i, cat in enumerate(categories):
            for letter in "FM":
                utt = f"{dialog}_{letter}{i:03d}"
                path = root / f"Session{s}" / "sentences" / "wav" / dialog / f"{utt}.wav"
                write_tone(path, seconds, freq=_emotion_pitch(cat) * (1.1 if letter == "F" else 0.9), seed=s * 100 + i)
                out.append(path)
                lines += [f"[{2.0 * i:.4f} - {2.0 * i + 1.5:.4f}]\t{utt}\t{cat}\t[2.5000, 3.0000, 3.5000]",
                          "C-E1:\tNeutral;\t()", "A-E1:\tval 3; act 3; dom  3;\t()", ""]
        ev = root / f"Session{s}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        ev.parent.mkdir(parents=True, exist_ok=True)
        ev.write_text("\n".join(lines) + "\n")
        (ev.parent / "Categorical").mkdir(exist_ok=True)  # the release's per-evaluator folders: not read
    return out


BROKEN_KINDS = ("corrupt", "empty", "text", "zero_samples", "nan", "silence", "unknown_code", "unparseable")


def make_broken_files(root: str | Path) -> dict[str, Path]:
    """One file of each kind ``prepare`` must reject, named like CREMA-D clips where that matters."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = {k: root / name for k, name in {
        "corrupt": "1090_DFA_ANG_XX.wav", "empty": "1090_DFA_HAP_XX.wav", "text": "1090_DFA_SAD_XX.wav",
        "zero_samples": "1090_DFA_NEU_XX.wav", "nan": "1090_IEO_ANG_HI.wav", "silence": "1090_IEO_HAP_LO.wav",
        "unknown_code": "1090_DFA_XYZ_XX.wav", "unparseable": "angry_take3.wav"}.items()}
    files["corrupt"].write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(64)))  # malformed header
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio, it is a text file named .wav\n")
    sf.write(str(files["zero_samples"]), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    nan = tone(0.5)
    nan[100:200] = np.nan
    sf.write(str(files["nan"]), nan, SAMPLE_RATE, subtype="FLOAT")
    write_audio(files["silence"], np.zeros(8000, dtype=np.float32))
    write_tone(files["unknown_code"], 0.5)
    write_tone(files["unparseable"], 0.5)
    (root / "README.txt").write_text("not audio; must be ignored\n")
    return files


FOREIGN_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


def save_foreign_model(out: str | Path, *, model_type: str = "wav2vec2", labels: Iterable[str] = ("calm", "tense", "other"),
                       seed: int = 0, norm: str = "layer") -> Path:
    """A tiny randomly initialised ``*ForSequenceClassification`` of ``model_type`` saved with
    ``save_pretrained`` (model and feature extractor), as a user's own Hub model would be: no
    emovox.json, labels only in its config. ``norm`` "group" gives a model without attention mask."""
    import torch
    from transformers import AutoConfig, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    labels = list(labels)
    arch = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                classifier_proj_size=32, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
                num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)})
    if model_type == "wavlm":
        arch.update(num_buckets=32, max_bucket_distance=100)
    torch.manual_seed(seed)
    model = AutoModelForAudioClassification.from_config(AutoConfig.for_model(model_type, **arch)).eval()
    out = Path(out)
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=norm == "layer").save_pretrained(out)
    return out


def save_tiny_whisper(out: str | Path, *, seed: int = 0, layers: int = 2, d_model: int = 32) -> Path:
    """A tiny randomly initialised Whisper (``WhisperForConditionalGeneration``, 80 mel bins) saved
    with its feature extractor, as ``import-ct2`` or a hub download leaves one: for tests of the
    Whisper backbone without real weights."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    cfg = WhisperConfig(d_model=d_model, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model,
                        vocab_size=128, max_source_positions=1500, max_target_positions=32, num_mel_bins=80,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                        classifier_proj_size=d_model)
    out = Path(out)
    WhisperForConditionalGeneration(cfg).eval().save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


HF_LABELS = ("angry", "happy", "neutral", "sad")
HF_SPLITS = {"train": ("s1", "s2", "s3", "s4"), "validation": ("s5",), "test": ("s6",)}


def hf_clip_bytes(label: str, speaker: str, take: int, *, sr: int = 22_050, fmt: str = "WAV") -> bytes:
    """One short encoded clip (bytes of a WAV/FLAC file) whose pitch follows the label."""
    import io

    pitch = {"angry": 300.0, "happy": 260.0, "neutral": 180.0, "sad": 140.0}.get(label, 220.0)
    seed = sum(map(ord, label + speaker)) * 10 + take
    buf = io.BytesIO()
    sf.write(buf, tone(0.25 + 0.05 * take, freq=pitch * (1 + int(speaker[1:]) / 50), sr=sr, seed=seed,
                       channels=2 if take % 2 else 1), sr, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def hf_records(splits: dict[str, Iterable[str]] | None = None, *, labels: Iterable[str] = HF_LABELS,
               takes: int = 1) -> dict[str, list[dict]]:
    """Rows per split for a Hugging Face audio dataset: audio {bytes, path}, emotion, speaker_id."""
    out: dict[str, list[dict]] = {}
    for split, speakers in (splits or HF_SPLITS).items():
        out[split] = [{"audio": {"bytes": hf_clip_bytes(lab, spk, t), "path": f"{spk}_{lab}_{t}.wav"},
                       "emotion": lab, "speaker_id": spk}
                      for spk in speakers for lab in labels for t in range(takes)]
    return out


def make_hf_dataset(root: str | Path, *, layout: str = "save_to_disk", splits: dict[str, Iterable[str]] | None = None,
                    labels: Iterable[str] = HF_LABELS, takes: int = 1) -> Path:
    """A small Hugging Face audio dataset as a user would have one on disk: ``layout`` is
    ``save_to_disk`` (a DatasetDict), ``parquet`` (one ``SPLIT.parquet`` per split, as on the Hub)
    or ``audiofolder`` (``SPLIT/*.wav`` + ``SPLIT/metadata.csv``). ``emotion`` is a ClassLabel
    (audiofolder: text), ``speaker_id`` a string, ``audio`` an Audio column holding WAV bytes."""
    import datasets

    datasets.disable_progress_bars()
    root = Path(root)
    labels = list(labels)
    records = hf_records(splits, labels=labels, takes=takes)
    if layout == "audiofolder":
        for split, rows in records.items():
            (root / split).mkdir(parents=True, exist_ok=True)
            for r in rows:
                (root / split / r["audio"]["path"]).write_bytes(r["audio"]["bytes"])
            meta = ["file_name,emotion,speaker_id"] + [f"{r['audio']['path']},{r['emotion']},{r['speaker_id']}"
                                                      for r in rows]
            (root / split / "metadata.csv").write_text("\n".join(meta) + "\n")
        return root
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "emotion": datasets.ClassLabel(names=labels), "speaker_id": datasets.Value("string")})
    dd = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
        .cast_column("audio", datasets.Audio())
        for split, rows in records.items()})
    if layout == "save_to_disk":
        dd.save_to_disk(str(root))
    elif layout == "parquet":
        root.mkdir(parents=True, exist_ok=True)
        for split, ds in dd.items():
            ds.to_parquet(str(root / f"{split}.parquet"))
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return root
