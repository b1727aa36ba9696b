"""The frozen-encoder feature cache: each clip is encoded once by a frozen backbone into
utterance statistics [2, layers + 2, hidden] (the means over its real frames, then the standard
deviations, of every hidden state and of the encoder output, which transformers 5 no longer
repeats as the last hidden state) and kept on disk, so a head (or a search, or a cross-validation)
trains on vectors instead of audio. Augmented copies of a clip (``augment.feature_copies``) are
cached under their own keys.

Cache: ``$EMOVOX_CACHE/features`` (default ``~/.cache/emovox/features``), one folder per model
(a hash of the backbone's weights, config and feature-extractor settings) holding one ``.npy`` per
clip (and, in a subfolder per kind, what ``training.layer_cache`` keeps: frames below a layer, ``.npz``) (a hash of the resolved path, file size, modification time, ``max_seconds`` and, for an
augmented copy, the augmentation settings, seed and copy number).
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..config import DROPOUT_KEYS
from ..data.audio import SAMPLE_RATE
from ..data.dataset import AudioDataset
from ..models.backbones import family_of
from ..models.heads import layer_stats
from ..models.tuning import backbone_of

FEATURE_VERSION = 3  # 2: the encoder output appended after the hidden states; 3: standard deviations
# Config entries that do not change what a frozen encoder computes in eval mode.
_NOT_IN_KEY = {"id2label", "label2id", "num_labels", "architectures", "_name_or_path", "transformers_version",
               "use_weighted_layer_sum", "classifier_proj_size", *DROPOUT_KEYS}


def cache_root() -> Path:
    """Where features are cached: ``$EMOVOX_CACHE/features``, default ``~/.cache/emovox/features``."""
    return Path(os.environ.get("EMOVOX_CACHE") or Path.home() / ".cache" / "emovox").expanduser() / "features"


def model_key(model: torch.nn.Module, feature_extractor: Any) -> str:
    """A hash of what determines the features: backbone weights and config, normalisation settings."""
    base = backbone_of(model)
    config = {k: v for k, v in base.config.to_dict().items() if k not in _NOT_IN_KEY}
    h = hashlib.blake2b(digest_size=10)
    h.update(json.dumps({"version": FEATURE_VERSION, "config": config, "fe": feature_extractor.to_dict()},
                        sort_keys=True, default=str).encode())
    for name, tensor in sorted(base.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def clip_key(path: str | Path, max_seconds: float, variant: str = "") -> str:
    """A hash of the clip's resolved path, size, modification time, the length it is cut to and
    ``variant`` (what was done to the wave before encoding; "" for the clean clip)."""
    p = Path(path).resolve()
    st = p.stat()
    text = f"{p}|{st.st_size}|{st.st_mtime_ns}|{float(max_seconds):.6f}" + (f"|{variant}" if variant else "")
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def encode_batch(base: torch.nn.Module, values: Sequence[np.ndarray], *, use_mask: bool) -> np.ndarray:
    """Means and standard deviations over each clip's real frames: float32 [B, 2, layers + 2, hidden]
    (hidden states, then the output).

    Without a mask (group-norm models such as wav2vec2-base) pass one clip at a time: padding
    would change their feature encoder's normalisation.
    """
    family = family_of(base)
    x, mask = family.pad(list(values))
    mask_t = torch.from_numpy(mask) if use_mask else None
    with torch.inference_mode():
        last, layers, frames = family.encode(base, torch.from_numpy(x), mask_t, all_layers=True)
        stats = layer_stats(torch.cat([layers, last[:, None]], dim=1), frames)  # [B, 2, L+2, H]
    return stats.float().numpy()


def length_batches(order: list[int], lengths: Sequence[int], *, use_mask: bool, max_samples: int) -> list[list[int]]:
    """Length-sorted batches of at most ``max_samples`` padded samples (singletons without a mask)."""
    if not use_mask:
        return [[i] for i in order]
    out: list[list[int]] = []
    for i in sorted(order, key=lambda j: lengths[j]):
        if out and lengths[i] * (len(out[-1]) + 1) <= max_samples:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def cached_features(model: torch.nn.Module, feature_extractor: Any, dataset: AudioDataset, *,
                    use_cache: bool = True, progress: bool = False, batch_seconds: float = 32.0,
                    variant: str = "", share: tuple[int, int] | None = None) -> torch.Tensor | None:
    """Features [N, 2, layers + 2, hidden] of every clip of ``dataset``, from the cache where present.

    ``variant`` names what the dataset does to each wave (its augmentation, seed and epoch) so
    that augmented copies get their own cache keys; "" for clean clips (no augmentation).
    Newly encoded clips are written to the cache atomically (other processes may share it).
    ``share=(rank, world)`` (a data-parallel launch) encodes only every world-th missing clip from
    the rank-th into the cache and returns None; a later plain call reads them all (and encodes
    what another process could not leave there, e.g. on a node without the shared cache).
    """
    feats = cached_items(model, feature_extractor, dataset, encode=encode_batch, use_cache=use_cache,
                         progress=progress, batch_seconds=batch_seconds, variant=variant, share=share)
    return None if feats is None else torch.from_numpy(np.stack(feats))


def cached_items(model: torch.nn.Module, feature_extractor: Any, dataset: AudioDataset, *, encode: Callable,
                 kind: str = "", use_cache: bool = True, progress: bool = False, batch_seconds: float = 32.0,
                 variant: str = "", share: tuple[int, int] | None = None) -> list | None:
    """What ``encode(base, values, use_mask=...)`` makes of each clip of ``dataset`` (one array, or a
    dict of arrays, per clip), read from the cache where present, else encoded in length-sorted
    batches and written there: the stats of ``cached_features`` (``kind`` ""), or the frames of
    ``training.layer_cache`` (``kind`` names them: its own folder under the model's). See
    ``cached_features`` for ``variant`` and ``share``; with ``share`` it returns None."""
    from tqdm import tqdm

    base = backbone_of(model).eval()
    use_mask = family_of(base).uses_attention_mask(feature_extractor)
    folder = cache_root() / model_key(model, feature_extractor) / kind
    suffix = ".npz" if kind else ".npy"
    keys = [clip_key(p, dataset.max_seconds, variant) for p in dataset.paths]
    feats: list[Any] = [_read(folder / f"{k}{suffix}") if use_cache else None for k in keys]
    first: dict[str, int] = {}  # a clip listed twice (same cache key) is encoded once
    missing = [i for i, f in enumerate(feats) if f is None and first.setdefault(keys[i], i) == i]
    if share is not None:  # one process of several: its share of the missing clips, into the cache only
        # shares are taken over all clips, not the missing ones: another process may already have
        # written some of its own when this one looks, and the shares must not shift with that
        missing = [i for i in missing if i % share[1] == share[0]]
    todo = missing
    desc = "encoding" + (f" {kind}" if kind else "") + (f" ({variant.split('|')[-1]})" if variant else "")
    bar = tqdm(total=len(todo), desc=desc, unit="clip", disable=not progress or not todo, mininterval=0.5)
    batches = length_batches(todo, dataset.lengths, use_mask=use_mask, max_samples=int(batch_seconds * SAMPLE_RATE))
    for batch, values in prepared_batches(batches, dataset):
        encoded = encode(base, values, use_mask=use_mask)
        for i, f in zip(batch, encoded):
            feats[i] = f
            if use_cache:
                _write(folder / f"{keys[i]}{suffix}", f)
        bar.update(len(batch))
    bar.close()
    if share is not None:
        return None
    return [f if f is not None else feats[first[keys[i]]] for i, f in enumerate(feats)]


def prepared_batches(batches: list[list[int]], dataset: AudioDataset) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Each batch with its model inputs; the next batch is decoded and featurized in a background
    thread while the current one is encoded (decoding and the feature extractor's numpy release
    the GIL, so this overlaps the encoder's compute)."""
    def load(batch: list[int]) -> list[np.ndarray]:
        return [dataset[i][dataset.input_name] for i in batch]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emovox-decode") as pool:
        pending = pool.submit(load, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            values = pending.result()
            pending = pool.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
            yield batch, values


def _read(path: Path) -> np.ndarray | dict[str, np.ndarray] | None:
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        return np.load(path)
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _write(path: Path, item: np.ndarray | dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    if isinstance(item, dict):
        np.savez(tmp, **item)
    else:
        np.save(tmp, item)
    os.replace(tmp, path)
