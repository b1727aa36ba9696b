"""The blocking half of ``emovox serve``: uploads on disk, the scoring job a worker thread runs,
and which HTTP status a file the decoder refuses earns.

Nothing here knows HTTP frameworks: a job takes ``(name, temp path)`` pairs and returns the rows
``emovox predict`` would write for them (``path`` is the uploaded file's name), so the same file
gets the same scores as on the command line."""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from ..data.audio import read_info
from ..errors import BadAudio, BadConfig
from .abstain import check_min_confidence, mark
from .predict import Predictor

# Content-Type of a raw body -> the suffix its temp file gets (the decoder reads the header anyway)
AUDIO_SUFFIXES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
                  "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/ogg": ".ogg", "audio/opus": ".ogg",
                  "application/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/aiff": ".aiff",
                  "audio/x-aiff": ".aiff", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/m4a": ".m4a",
                  "audio/aac": ".aac", "audio/webm": ".webm"}  # the last five through FFmpeg (the formats extra)
RAW_TYPES = ("application/octet-stream",)  # accepted besides audio/*
NOT_AUDIO = ("not readable as audio", "decoding failed", "needs FFmpeg")  # reasons that mean 415, not 400
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


@dataclass(frozen=True)
class ServeSettings:
    """What ``emovox serve`` was told.

    Attributes:
        max_upload_bytes: Largest request body (every file of a request together).
        max_seconds: Longest recording scored; longer ones get an error (413).
        workers: Scoring threads (requests beyond them wait their turn).
        api_key: When set, every ``/v1`` call but health and ready must carry it.
        top_k: Labels listed per file unless the request says otherwise.
        tmp_dir: Where uploads are written (the system temp dir when None).
        body_timeout: Seconds a request body may pause between chunks before it is cut off (408);
            the whole body gets ten times that: slow-loris uploads cannot hold a connection.
        min_confidence: Rows whose top score is under it abstain (``label`` null, ``abstained`` true).
    """

    max_upload_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 600.0
    workers: int = 1
    api_key: str | None = None
    top_k: int = 3
    tmp_dir: str | None = None
    body_timeout: float = 15.0
    min_confidence: float | None = None

    def check(self) -> "ServeSettings":
        """Refuse settings no server can run with.

        Raises:
            BadConfig: a non-positive limit, worker count or top_k, an empty key, or no writable
                folder for uploads (a read-only container without a writable /tmp).
        """
        if self.max_upload_bytes <= 0:
            raise BadConfig(f"--max-upload-mb must be positive (got {self.max_upload_bytes / 2**20:g})")
        if self.max_seconds <= 0:
            raise BadConfig(f"--max-seconds must be positive (got {self.max_seconds:g})")
        if self.workers < 1:
            raise BadConfig(f"--workers must be at least 1 (got {self.workers})")
        if not self.body_timeout > 0:
            raise BadConfig(f"--body-timeout must be positive (got {self.body_timeout:g})")
        if self.top_k < 1:
            raise BadConfig(f"--top-k must be at least 1 (got {self.top_k})")
        check_min_confidence(self.min_confidence)
        if self.api_key is not None and not self.api_key.strip():
            raise BadConfig("the API key is empty; set the variable --api-key-env names to a non-empty key")
        try:  # uploads are spooled to disk: refuse to start rather than answer every upload with 500
            remove_dir(tempfile.mkdtemp(prefix="emovox-serve-", dir=self.tmp_dir))
        except OSError as exc:
            raise BadConfig(f"no writable folder for uploads ({self.tmp_dir or 'the temp dir'}: "
                            f"{exc.strerror or exc}); set TMPDIR to one (in a read-only container: "
                            "docker run --tmpfs /tmp)") from None
        return self


def upload_name(filename: str | None, index: int) -> str:
    """The name a result row shows: the client's file name without folders, or ``file-N``."""
    name = Path((filename or "").replace("\\", "/")).name
    return name or f"file-{index + 1}"


def temp_path(folder: str | Path, index: int, name: str, content_type: str | None = None) -> Path:
    """A temp file path keeping the upload's suffix (or the Content-Type's), never its name."""
    suffix = Path(name).suffix.lower()
    if not _SAFE_SUFFIX.match(suffix):
        suffix = AUDIO_SUFFIXES.get((content_type or "").split(";")[0].strip().lower(), ".bin")
    return Path(folder) / f"upload-{index}{suffix}"


def save_stream(src: BinaryIO, dest: Path) -> Path:
    """Copy an (already spooled) upload to ``dest`` on disk, in 1 MiB pieces."""
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest


def new_upload_dir(settings: ServeSettings) -> str:
    """A private folder for one request's files; the caller removes it (:func:`remove_dir`)."""
    return tempfile.mkdtemp(prefix="emovox-serve-", dir=settings.tmp_dir)


def remove_dir(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def status_for(reason: str) -> int:
    """The HTTP status of a file that could not be scored: 415 not audio, 413 too long, else 400."""
    if reason.startswith(NOT_AUDIO):
        return 415
    if reason.startswith("recording is"):
        return 413
    return 400


def score_files(predictor: Predictor, files: Sequence[tuple[str, Path]], *, settings: ServeSettings,
                top_k: int, windows: bool = False) -> list[dict]:
    """Rows for uploaded files, in order: the predict JSONL schema, ``path`` = the upload's name.

    A file that cannot be scored gets ``{"path", "error", "status"}``; ``windows`` adds the
    window timeline (``start``, ``end``, ``label``, ``scores``) to each scored file (one window
    spanning a clip that is scored whole)."""
    rows: list[dict | None] = [None] * len(files)
    todo = []
    for i, (name, path) in enumerate(files):
        reason = _refusal(path, settings.max_seconds)
        if reason:
            rows[i] = {"path": name, "error": _clean(reason, path, name), "status": status_for(reason)}
        else:
            todo.append(i)
    scored = predictor.scored([files[i][1] for i in todo], windows=windows)
    for i, (_, p, reason, window_rows) in zip(todo, scored):
        name, path = files[i]
        if p is None:
            rows[i] = {"path": name, "error": _clean(reason, path, name), "status": status_for(reason)}
            continue
        rows[i] = mark(predictor.row(name, p, top_k), settings.min_confidence)
        if windows:
            rows[i]["windows"] = _timeline(predictor, p, path, window_rows)
    return [r for r in rows if r is not None]


def _refusal(path: Path, max_seconds: float) -> str:
    """Why a file is refused before decoding ('' when it is not): unreadable header, too long."""
    try:
        duration = read_info(path).duration
    except BadAudio as exc:
        return _strip(str(exc), path)
    if duration > max_seconds:
        return f"recording is {duration:.1f} s long; this server scores up to {max_seconds:g} s (--max-seconds)"
    return ""


def _timeline(predictor: Predictor, probs: np.ndarray, path: Path, window_rows: list[dict]) -> list[dict]:
    if not window_rows:  # scored whole: one window, the whole clip
        window_rows = [{"probs": probs, "start": 0.0, "end": read_info(path).duration}]
    labels = predictor.scheme.labels
    out = []
    for w in window_rows:
        p = w["probs"]
        out.append({"start": round(float(w["start"]), 3), "end": round(float(w["end"]), 3),
                    "label": labels[int(np.argmax(p))], "scores": {lab: float(x) for lab, x in zip(labels, p)}})
    return out


def _strip(msg: str, path: Path) -> str:
    return msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg


def _clean(reason: str, path: Path, name: str) -> str:
    """A reason without the server's temp path in it."""
    return _strip(reason, path).replace(str(path), name).replace(str(path.parent) + "/", "")



def score_conversations(predictor: Predictor, files: Sequence[tuple[str, Path]], *, settings: ServeSettings,
                        top_k: int, speakers: int | str | None = None) -> list[dict]:
    """``?segments=vad`` rows for uploaded files: per file its summary (``label``, ``score``,
    ``speech_seconds``, ``shares``), ``segments`` (``start``, ``end``, ``speaker``?, ``label``,
    ``score``, ``top_k``) and, with ``speakers``, a ``speakers`` list of per-speaker summaries.
    A file that cannot be scored gets ``{"path", "error", "status"}`` as in :func:`score_files`."""
    from .conversation import ConversationOptions, conversation_rows

    options = ConversationOptions(speakers=speakers).check()
    out = []
    for name, path in files:
        reason = _refusal(path, settings.max_seconds)
        if reason:
            out.append({"path": name, "error": _clean(reason, path, name), "status": status_for(reason)})
            continue
        rows = list(conversation_rows(predictor, [str(path)], options=options, top_k=top_k))
        if "error" in rows[0]:
            out.append({"path": name, "error": _clean(rows[0]["error"], path, name), "status": status_for(rows[0]["error"])})
            continue
        strip = ("path", "summary")
        file_row = {k: v for k, v in rows[-1].items() if k not in strip and k != "segments"}
        segs = [{k: v for k, v in r.items() if k != "path"} for r in rows if "summary" not in r]
        result = {"path": name, **file_row, "segments": segs}
        if speakers is not None:
            result["speakers"] = [{k: v for k, v in r.items() if k not in strip} for r in rows
                                  if r.get("summary") == "speaker"]
        out.append(result)
    return out
