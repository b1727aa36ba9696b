"""Inference: ``Predictor.from_run_dir()`` scores files, folders and manifests, in length-sorted
batches, long clips in streamed windows, several models as an ensemble (averaged probabilities).

A model is any source ``models.source`` resolves: an emovox run dir, a ``save_pretrained``
audio-classification folder, an ONNX export, or a hub id."""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Iterator, Sequence

import numpy as np

from ..data.audio import SAMPLE_RATE, is_audio_file, load_audio, read_info, scan_audio, stream_windows
from ..errors import BadAudio, BadRunDir, EmovoxError
from ..labels import LabelScheme
from ..models.backbones import Backbone, backbone_for, family_of
from ..models.export_dir import is_onnx_export
from ..models.source import ModelSource, open_source
from .abstain import abstain, check_min_confidence

if TYPE_CHECKING:
    from .vad import VadOptions

BACKENDS = ("auto", "torch", "onnx")  # auto: onnx for an ONNX export folder, else torch
DEFAULT_WINDOW_SECONDS = 10.0


@dataclass
class Member:
    """One model of an ensemble: its family, feature extractor, temperature and a logits function."""

    family: Backbone
    fe: object
    temperature: float
    uses_mask: bool
    run_logits: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (inputs [B,...,T], mask or None) -> [B,C]
    # batches scored at once, each on one thread (torch): two small forwards side by side use two
    # cores better than one forward split across both (1.24x on whisper-base segments, 2 cores);
    # only when there are at least as many batches as workers, so no core is left idle
    workers: int = 1
    one_thread: Callable[[], ContextManager] = nullcontext
    # the logits function those side-by-side batches use (ONNX: a one-thread session of the same
    # graph, made on first use); None: run_logits inside one_thread
    side_logits: Callable[[], Callable[[np.ndarray, np.ndarray | None], np.ndarray]] | None = None

    def normalise(self, wave: np.ndarray) -> np.ndarray:
        return self.family.featurize(self.fe, wave)


def _torch_member(source: ModelSource, threads: int | None) -> Member:
    import torch

    from ..models.loading import feature_extractor_for, load_trained

    if threads:
        torch.set_num_threads(threads)
    model = load_trained(source.ref, allow_pickle=source.allow_pickle, config=source.config)
    family = family_of(model)
    fe = feature_extractor_for(source.ref, model.config)

    def run(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        with torch.inference_mode():
            kwargs = {"attention_mask": torch.from_numpy(mask)} if mask is not None else {}
            return model(**{family.input_name: torch.from_numpy(values)}, **kwargs).logits.float().numpy()

    return Member(family, fe, source.temperature, family.uses_attention_mask(fe), run,
                  workers=max(1, threads or torch.get_num_threads()), one_thread=_torch_one_thread)


_ONE_THREAD = threading.Lock()
_ONE_THREAD_USERS = [0, 0]  # callers inside _torch_one_thread, torch's thread count before the first


@contextmanager
def _torch_one_thread():
    """torch's intra-op threads set to 1 while any caller is inside (the count is process-wide),
    restored when the last one leaves."""
    import torch

    with _ONE_THREAD:
        if _ONE_THREAD_USERS[0] == 0:
            _ONE_THREAD_USERS[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _ONE_THREAD_USERS[0] += 1
    try:
        yield
    finally:
        with _ONE_THREAD:
            _ONE_THREAD_USERS[0] -= 1
            if _ONE_THREAD_USERS[0] == 0:
                torch.set_num_threads(_ONE_THREAD_USERS[1])


def _onnx_member(source: ModelSource, threads: int | None) -> Member:
    """An export run by onnxruntime, its front end in numpy: no torch, no transformers."""
    from ..models.backbones.front_end import front_end_for
    from .export import OnnxClassifier

    clf = OnnxClassifier.from_dir(source.ref, threads=threads)
    fe = front_end_for(source.ref)
    workers = threads or os.cpu_count() or 1
    return Member(backbone_for(clf.config, strict=False), fe, source.temperature, clf.uses_attention_mask, clf.logits,
                  workers=workers, side_logits=_once(lambda: OnnxClassifier.from_dir(source.ref, threads=1).logits))


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    """``make()``'s value, made on the first call only (thread-safe)."""
    lock, made = threading.Lock(), []

    def get() -> Any:
        with lock:
            if not made:
                made.append(make())
            return made[0]

    return get


def member_backend(backend: str, ref: str | Path) -> str:
    """``torch`` or ``onnx`` for one model: ``auto`` runs an ONNX export folder with onnxruntime."""
    if backend == "auto":
        return "onnx" if is_onnx_export(ref) else "torch"
    return backend


class Predictor:
    """Scores audio with one run or an ensemble of runs that share a label scheme."""

    def __init__(self, members: list[Member], scheme: LabelScheme, max_seconds: float, *,
                 window_seconds: float | None = None, batch_seconds: float = 16.0, max_pad: float = 1.0):
        """``max_pad``: how much longer than the shortest clip of a batch its longest may be, for
        models that take an attention mask. 1.0 batches only equal lengths (long files' windows),
        i.e. scores ordinary clips one per call. Measured on 2 cores (small model, 16 clips):
        padded batches at 1.25 ran at 0.73x (torch) and 0.95x (ONNX) the speed of one clip per
        call, and dynamic int8 would make a clip's score depend on its batch mates."""
        self.members = members
        self.scheme = scheme
        self.sources: list[ModelSource] = []  # set by from_run_dir: what each model said or assumed
        # Clips up to the window length are scored whole, exactly as transformers.pipeline does;
        # longer ones (recordings, not utterances) in half-overlapping windows of that length.
        self.window_seconds = window_seconds or max(max_seconds, DEFAULT_WINDOW_SECONDS)
        self.batch_samples = int(batch_seconds * SAMPLE_RATE)
        self.max_pad = max_pad

    @classmethod
    def from_run_dir(cls, run_dirs: str | Path | Sequence[str | Path], *, backend: str = "auto",
                     threads: int | None = None, allow_pickle: bool = False, **kwargs) -> "Predictor":
        """Load one model (or several, as an ensemble) for ``backend`` torch or onnx: emovox run
        dirs, ``save_pretrained`` folders or hub ids (ONNX exports for ``onnx``).

        Raises:
            BadRunDir: not a model, unknown backend, or models with different label schemes.
        """
        if backend not in BACKENDS:
            raise BadRunDir(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        refs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
        sources = [open_source(r, allow_pickle=allow_pickle) for r in refs]
        members = [(_onnx_member if member_backend(backend, s.ref) == "onnx" else _torch_member)(s, threads)
                   for s in sources]
        if any(s.scheme.labels != sources[0].scheme.labels for s in sources):
            raise BadRunDir(f"models {', '.join(map(str, refs))} use different label schemes; an ensemble needs one")
        for s in sources:
            if s.defaults:
                logging.getLogger("emovox").info("%s has no emovox.json; assumed %s", s.ref, ", ".join(s.defaults))
        max_seconds = min(s.max_seconds for s in sources)
        limits = [x for m, s in zip(members, sources) if (x := m.family.max_seconds(s.config))]
        if limits:  # windows within the longest input every member takes (Whisper's saved window)
            wanted = kwargs.get("window_seconds") or max(max_seconds, DEFAULT_WINDOW_SECONDS)
            kwargs["window_seconds"] = min(wanted, *limits)
        predictor = cls(members, sources[0].scheme, max_seconds, **kwargs)
        predictor.sources = sources
        return predictor

    # -- waves -> probabilities -------------------------------------------------------------
    def probs(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities [N, C] for whole waves, averaged over the ensemble."""
        out = np.zeros((len(waves), len(self.scheme)), dtype=np.float64)
        for m in self.members:
            out += self._member_probs(m, waves)
        return (out / len(self.members)).astype(np.float32)

    def _member_probs(self, m: Member, waves: Sequence[np.ndarray]) -> np.ndarray:
        z = self._member_logits(m, waves) / m.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _member_logits(self, m: Member, waves: Sequence[np.ndarray]) -> np.ndarray:
        values = [m.normalise(w) for w in waves]
        out = np.zeros((len(values), len(self.scheme)), dtype=np.float32)
        batches = list(self._batches([v.shape[-1] for v in values], exact=not m.uses_mask))

        def score(batch: list[int], run=m.run_logits) -> tuple[list[int], np.ndarray]:
            x, mask = m.family.pad([values[i] for i in batch])
            return batch, run(x, mask if m.uses_mask else None)

        if 1 < m.workers <= len(batches):
            run = m.side_logits() if m.side_logits else m.run_logits
            with m.one_thread(), ThreadPoolExecutor(m.workers) as pool:
                done = list(pool.map(lambda b: score(b, run), batches))
        else:
            done = [score(b) for b in batches]
        for batch, logits in done:
            out[batch] = logits
        return out

    def _batches(self, lengths: list[int], *, exact: bool) -> Iterator[list[int]]:
        """Length-sorted batches within the batch budget: up to ``max_pad`` padding for models
        with a mask, none at all for models without (their group norm would see the zeros)."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batch: list[int] = []
        for i in order:
            if batch:
                longest, shortest = lengths[i], lengths[batch[0]]
                too_long = longest * (len(batch) + 1) > self.batch_samples
                too_uneven = longest != shortest if exact else longest > self.max_pad * shortest
                if too_long or too_uneven:
                    yield batch
                    batch = []
            batch.append(i)
        if batch:
            yield batch

    # -- files -> rows ------------------------------------------------------------------------
    def scored(self, paths: Sequence[str | Path], *, windows: bool = False, chunk: int = 64,
               progress: bool = False) -> Iterator[tuple[str, np.ndarray | None, str, list[dict]]]:
        """``(path, probabilities or None, error reason, window rows)`` per file, in input order.

        Clips longer than the model's maximum length are streamed in half-overlapping windows
        and their probabilities averaged. Decoding of the next chunk overlaps with the model
        running on this one.
        """
        bar = _bar(len(paths), progress)
        chunks = [list(paths[i:i + chunk]) for i in range(0, len(paths), chunk)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_decode_chunk, chunks[0], self.window_seconds) if chunks else None
            for k, part in enumerate(chunks):
                decoded = pending.result()
                if k + 1 < len(chunks):
                    pending = pool.submit(_decode_chunk, chunks[k + 1], self.window_seconds)
                short = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
                probs = dict(zip(short, self.probs([decoded[i] for i in short]))) if short else {}
                for i, path in enumerate(part):
                    d = decoded[i]
                    if isinstance(d, str):
                        yield str(path), None, d, []
                    elif isinstance(d, np.ndarray):
                        yield str(path), probs[i], "", []
                    else:
                        yield self._score_long(str(path), windows=windows)
                bar.update(len(part))
        bar.close()

    def predict_files(self, paths: Sequence[str | Path], *, top_k: int = 3, windows: bool = False,
                      progress: bool = False) -> Iterator[dict]:
        """One row per file, in input order: path, label, score, top_k; or path and error.
        ``windows`` adds a row per window (with start and end seconds) after a long file's row."""
        for path, p, error, window_rows in self.scored(paths, windows=windows, progress=progress):
            if p is None:
                yield {"path": path, "error": error}
                continue
            yield self.row(path, p, top_k)
            for w in window_rows:
                yield {**self.row(path, w["probs"], top_k), "start": w["start"], "end": w["end"]}

    def _score_long(self, path: str, *, windows: bool) -> tuple[str, np.ndarray | None, str, list]:
        """Stream a long file in windows, as many at a time as fit the batch budget: memory stays
        bounded by one batch whatever the file's length."""
        batch = max(1, int(self.batch_samples // (self.window_seconds * SAMPLE_RATE)))
        try:
            scan_audio(path)  # prepare's checks (NaN, silence, limits) in one cheap pass before the model
            rows, acc, n = [], None, 0
            it = stream_windows(path, window_seconds=self.window_seconds, hop_seconds=self.window_seconds / 2)
            while True:
                part = [w for _, w in zip(range(batch), it)]
                if not part:
                    break
                p = self.probs([w for _, w in part])
                acc = p.sum(axis=0) if acc is None else acc + p.sum(axis=0)
                n += len(part)
                if windows:
                    rows += [{"probs": pk, "start": s, "end": s + len(w) / SAMPLE_RATE} for (s, w), pk in zip(part, p)]
            if acc is None:
                return path, None, "zero samples", []
            return path, acc / n, "", rows
        except BadAudio as exc:
            return path, None, _reason(exc, path), []

    def row(self, path: str, probs: np.ndarray, top_k: int) -> dict:
        order = np.argsort(-probs)[: max(1, top_k)]
        top = [{"label": self.scheme.labels[j], "score": float(probs[j])} for j in order]
        return {"path": path, "label": top[0]["label"], "score": top[0]["score"], "top_k": top}


LONG = object()  # marker: decode in streamed windows instead


def _decode_chunk(paths: list, window_seconds: float) -> list:
    return [_decode(p, window_seconds) for p in paths]


def _decode(path, window_seconds: float):
    """A wave, LONG for clips to stream in windows, or the error reason."""
    try:
        if read_info(path).duration > window_seconds + 1e-3:
            return LONG
        return load_audio(path)
    except BadAudio as exc:
        return _reason(exc, str(path))


def _reason(exc: EmovoxError, path: str) -> str:
    msg = str(exc)
    return msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg


def expand_inputs(items: Iterable[str | Path]) -> list[str]:
    """Files as given, folders as their audio files (sorted, recursive), manifests and other
    CSV/Parquet lists with a ``path`` column (local, or a URI pyarrow opens) as their paths.

    A missing path stays in the list so it gets an error row rather than vanishing.

    Raises:
        BadManifest: a list that cannot be read or has no ``path`` column.
    """
    from .path_list import is_path_list, read_path_list

    out: list[str] = []
    for item in map(str, items):
        if is_path_list(item):
            out += read_path_list(item)
        elif Path(item).is_dir():
            out += [str(p) for p in sorted(Path(item).rglob("*")) if p.is_file() and is_audio_file(p)]
        else:
            out.append(item)
    return out


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="predicting", unit="file", disable=not enabled, mininterval=0.5)


def predict(*, runs: Sequence[str | Path], inputs: Sequence[str | Path], backend: str = "auto", top_k: int = 3,
            windows: bool = False, window_seconds: float | None = None, threads: int | None = None,
            progress: bool = False, allow_pickle: bool = False, segment: str | None = None,
            speakers: int | str | None = None, vad: "VadOptions | None" = None, segment_margin: float = 0.5,
            rttm: str | Path | None = None, plot: str | Path | None = None,
            min_confidence: float | None = None) -> Iterator[dict]:
    """Library entry point of ``emovox predict``: rows for every input file.

    Args:
        runs: Models (run dirs, ``save_pretrained`` folders, hub ids; ONNX exports for ``onnx``);
            several are an ensemble.
        inputs: Audio files, folders (searched recursively) and manifests.
        segment: ``"windows"`` (as ``windows``) or ``"vad"``: one row per speech segment plus
            summary rows (``inference.conversation``), silence never scored.
        speakers: with ``segment="vad"``, a speaker count or ``"auto"``: segments get ``S1, S2, ...``.
        vad: how speech is found and cut (``VadOptions``: threshold, min speech/silence, max segment).
        segment_margin: seconds of silence framing each segment when it is scored (as utterances
            are recorded; ``ConversationOptions``).
        rttm, plot: with ``segment="vad"``, an RTTM file and a folder of timeline PNGs to write.
        min_confidence: Rows whose top score is under it get ``"label": None, "abstained": True``
            (scores kept); the others ``"abstained": False``.

    Returns:
        A lazy iterator of rows in input order: ``{"path", "label", "score", "top_k"}``, or
        ``{"path", "error"}`` for a file that cannot be scored (the others are still scored).

    Raises:
        BadRunDir: a run dir cannot be loaded. BadAudio: the inputs hold no audio file.
        BadConfig: an unknown ``segment``, ``speakers``/``rttm``/``plot`` without ``segment="vad"``,
            or a VAD option out of range; ``min_confidence`` outside [0, 1].
    """
    check_min_confidence(min_confidence)
    if segment is not None or speakers is not None or rttm or plot:
        from .conversation import check_segment_mode

        check_segment_mode(segment, speakers, rttm=rttm, plot=plot)
        if vad is not None:
            vad.check()
    predictor = Predictor.from_run_dir(runs, backend=backend, threads=threads, window_seconds=window_seconds,
                                       allow_pickle=allow_pickle)
    files = expand_inputs(inputs)
    if not files:
        raise BadAudio(f"no audio files found in {', '.join(map(str, inputs))}")
    if segment == "vad":
        from .conversation import predict_conversations

        return abstain(predict_conversations(predictor, files, speakers=speakers, vad=vad, margin=segment_margin,
                                             rttm=rttm, plot=plot, top_k=top_k, progress=progress), min_confidence)
    return abstain(predictor.predict_files(files, top_k=top_k, windows=windows or segment == "windows",
                                           progress=progress), min_confidence)
