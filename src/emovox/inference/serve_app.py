"""The HTTP side of ``emovox serve``: a FastAPI app around a :class:`Predictor`.

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``, the web page at ``/``):

* ``POST /v1/predict`` — multipart, field ``file`` once or repeated: a JSON list, one object per
  file in the ``emovox predict`` JSONL schema (``path`` = the uploaded name). A file that cannot be
  scored gets ``{"path", "error"}`` and the others are still scored (200). When *no* file could be
  scored the status is the first file's (415 not audio, 400 empty/silent, 413 too long) and the
  body ``{"error": ..., "results": [...]}``.
* ``POST /v1/predict/raw`` — the audio bytes as the body (``audio/*`` or
  ``application/octet-stream``): one object, or ``{"error"}`` with the file's status.
* ``GET /v1/health`` (liveness), ``GET /v1/ready`` (503 until the model is loaded),
  ``GET /v1/model`` (labels, family, scheme, training metrics).

Every error is ``{"error": "..."}``: 401 without the key (``--api-key-env``; ``Authorization:
Bearer KEY`` or ``X-API-Key``; health, ready, the page and the docs are open), 413 past the body
limit (counted while the body streams in), 415/400 not audio, 422 a bad field, 503 not ready,
500 (logged, never a traceback in the body). One log line per request: method, path, status, ms.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, List, Optional

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from ..errors import EmovoxError
from .predict import Predictor
from .serve_io import (AUDIO_SUFFIXES, RAW_TYPES, ServeSettings, new_upload_dir, remove_dir, save_stream,
                       score_conversations, score_files, temp_path, upload_name)

LOG = logging.getLogger("emovox.serve")
OPEN_PATHS = ("/v1/health", "/v1/ready")
NEEDS_MODEL = ("/v1/predict", "/v1/model")
BODY_METHODS = ("POST", "PUT", "PATCH")


class ServeState:
    """The loaded predictor (or why it is not), the settings and the scoring pool of one app."""

    def __init__(self, loader: Callable[[], Predictor], settings: ServeSettings, backend: str):
        self.loader, self.settings, self.backend = loader, settings, backend
        self.predictor: Predictor | None = None
        self.load_error = ""
        self.pool: ThreadPoolExecutor | None = None
        self.loaded = threading.Event()

    def start(self) -> None:
        """Open the worker pool and load the model in the background (``/v1/ready`` says when)."""
        self.pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="emovox-score")
        threading.Thread(target=self._load, name="emovox-load", daemon=True).start()

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        try:
            self.predictor = self.loader()
            LOG.info("model ready: %s (%s)", ", ".join(self.predictor.scheme.labels), self.backend)
        except EmovoxError as exc:
            self.load_error = str(exc)
            LOG.error("model failed to load: %s", exc)
        except Exception as exc:  # noqa: BLE001 - reported by /v1/ready, never raised into a request
            self.load_error = f"{type(exc).__name__}: {exc}"
            LOG.exception("model failed to load")
        finally:
            self.loaded.set()

    def not_ready(self) -> str:
        """Why scoring is impossible now ('' when the model is loaded)."""
        if self.predictor is not None:
            return ""
        return f"model failed to load: {self.load_error}" if self.load_error else "model is still loading"

    async def run(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking job in the bounded scoring pool, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))


class BodyTimeout(Exception):
    """Raised from ``receive`` when the client stops sending its body; :class:`Guard` answers 408."""


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes the limit; :class:`Guard` answers 413."""


async def send_json(send: Callable, status: int, payload: dict, headers: dict | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Pure ASGI middleware, outermost: key check, readiness, the streamed body limit, the
    request log line, and a JSON 500 (logged) for anything unhandled."""

    def __init__(self, app: Callable, state: ServeState):
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, seen = time.perf_counter(), {"status": 0, "started": False}

        async def send_seen(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                seen["status"], seen["started"] = msg["status"], True
            await send(msg)

        try:
            refusal = self.refusal(scope)
            if refusal:
                await send_json(send_seen, *refusal)
            else:
                await self.guarded(scope, receive, send_seen, seen)
        finally:
            LOG.info("%s %s %d %.1f ms", scope["method"], scope["path"], seen["status"],
                     (time.perf_counter() - t0) * 1000)

    def refusal(self, scope: dict) -> tuple[int, dict, dict] | None:
        """What to answer before reading the body: 401, 503 or a declared length over the limit."""
        path, headers = scope["path"], _headers(scope)
        key = self.state.settings.api_key
        if key and path.startswith("/v1/") and path not in OPEN_PATHS and not _key_ok(headers, key):
            return 401, {"error": "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"}, \
                {"WWW-Authenticate": "Bearer"}
        if path.startswith(NEEDS_MODEL) and (why := self.state.not_ready()):
            return 503, {"error": why}, {"Retry-After": "5"}
        limit = self.state.settings.max_upload_bytes
        length = headers.get("content-length", "")
        if scope["method"] in BODY_METHODS and length.isdigit() and int(length) > limit:
            return 413, {"error": _too_large(limit, f"the body is {int(length) / 2**20:.1f} MB")}, {}
        return None

    async def guarded(self, scope: dict, receive: Callable, send: Callable, seen: dict) -> None:
        limit, state = self.state.settings.max_upload_bytes, {"bytes": 0, "over": False, "late": False, "done": False}
        idle = self.state.settings.body_timeout
        deadline = time.monotonic() + 10 * idle

        async def counted() -> dict:
            if state["done"]:  # the body is in: waiting for a disconnect is not slow sending
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(0.01, min(idle, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                state["over"] = state["late"] = True
                raise BodyTimeout() from None
            if msg["type"] == "http.request":
                state["done"] = not msg.get("more_body", False)
                state["bytes"] += len(msg.get("body", b""))
                if state["bytes"] > limit:
                    state["over"] = True
                    raise BodyTooLarge()
            return msg

        async def send_unless_over(msg: dict) -> None:
            if not state["over"]:  # the app's answer to a cut-off body is replaced by the 413
                await send(msg)

        try:
            await self.app(scope, counted, send_unless_over)
        except Exception:  # noqa: BLE001 - the one place that turns anything unhandled into JSON
            if not state["over"]:
                LOG.exception("%s %s failed", scope["method"], scope["path"])
                if not seen["started"]:
                    await send_json(send, 500, {"error": "internal server error (logged on the server)"})
                return
        if state["late"] and not seen["started"]:
            await send_json(send, 408, {"error": f"request body too slow: {state['bytes']} bytes, then nothing for "
                                                 f"{idle:g} s (or over {10 * idle:g} s in all); send it at once"},
                            {"Connection": "close"})
        elif state["over"] and not seen["started"]:
            await send_json(send, 413, {"error": _too_large(limit, "the body passed it while streaming")})


def _too_large(limit: int, what: str) -> str:
    return f"upload too large: {what}; this server accepts up to {round(limit / 2**20, 2):g} MB (--max-upload-mb)"


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _key_ok(headers: dict[str, str], key: str) -> bool:
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())


def create_app(loader: Callable[[], Predictor], settings: ServeSettings | None = None, *,
               backend: str = "torch") -> FastAPI:
    """The app: ``loader`` builds the predictor in a background thread when the app starts.

    Raises:
        BadConfig: settings no server can run with.
    """
    state = ServeState(loader, (settings or ServeSettings()).check(), backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        yield
        state.stop()

    app = FastAPI(title="emovox", version=_version(), lifespan=lifespan,
                  description="Speech emotion recognition. Every error is JSON `{\"error\": \"...\"}`.")
    app.state.emovox = state
    _handlers(app)
    _routes(app, state)
    app.add_middleware(Guard, state=state)
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_field(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{' '.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(EmovoxError)
    async def user_error(request: Request, exc: EmovoxError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 400)


RAW_BODY = {"requestBody": {"required": True, "description": "The audio file's bytes.", "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("audio/*", *RAW_TYPES)}}}
TOP_K = Query(None, ge=1, le=1000, description="Labels listed per file (default: the server's --top-k).")
WINDOWS = Query(False, description="Add the per-window timeline (start, end, label, scores).")
SEGMENTS = Query(None, description="vad: score each speech segment (silence is not scored): the file's emotion "
                                   "shares over speech time and a `segments` list (start, end, label, score, top_k).")
SPEAKERS = Query(None, description="With segments=vad: a speaker count (1-32), auto, or channels (one speaker "
                                   "per channel of a stereo call: channel n is Sn); segments get speakers S1, S2, "
                                   "... and a `speakers` list summarises each.")


def _routes(app: FastAPI, state: ServeState) -> None:
    page = resources.files("emovox.inference").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/v1/health", summary="Liveness: the process answers.")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/ready", summary="Readiness: 200 once the model is loaded, 503 until then.")
    async def ready() -> JSONResponse:
        why = state.not_ready()
        if why:
            return JSONResponse({"error": why}, 503, headers={"Retry-After": "5"})
        return JSONResponse({"ready": True})

    @app.get("/v1/model", summary="Labels, backbone family, scheme and training metrics.")
    async def model() -> dict:
        return model_info(state)

    @app.post("/v1/predict", summary="Score uploaded files (multipart field `file`, repeatable).")
    async def predict(file: List[UploadFile] = File(..., description="One or more audio files."),
                      windows: bool = WINDOWS, top_k: Optional[int] = TOP_K, segments: Optional[str] = SEGMENTS,
                      speakers: Optional[str] = SPEAKERS) -> JSONResponse:
        mode = _segment_mode(segments, speakers)
        return await _predict_uploads(state, file, windows=windows, top_k=top_k, **mode)

    @app.post("/v1/predict/raw", summary="Score one file sent as the request body.", openapi_extra=RAW_BODY)
    async def predict_raw(request: Request, windows: bool = WINDOWS, top_k: Optional[int] = TOP_K,
                          filename: Optional[str] = Query(None, description="Name to report as `path`."),
                          segments: Optional[str] = SEGMENTS, speakers: Optional[str] = SPEAKERS) -> JSONResponse:
        mode = _segment_mode(segments, speakers)
        return await _predict_body(state, request, windows=windows, top_k=top_k, filename=filename, **mode)


def _segment_mode(segments: str | None, speakers: str | None) -> dict:
    """``segments``/``speakers`` checked before the body is read (422 naming the field)."""
    from .conversation import check_segment_mode
    from .speakers import parse_speakers

    try:
        check_segment_mode(segments, speakers)
        n = parse_speakers(speakers)
    except EmovoxError as exc:
        raise HTTPException(422, str(exc).replace("--segment", "segments").replace("--speakers", "speakers")) from None
    return {"segments": segments, "speakers": n}


async def _predict_uploads(state: ServeState, uploads: List[UploadFile], *, windows: bool,
                           top_k: int | None, **mode: Any) -> JSONResponse:
    folder = new_upload_dir(state.settings)
    names = [upload_name(u.filename, i) for i, u in enumerate(uploads)]
    pairs = [(n, temp_path(folder, i, n, u.content_type)) for i, (n, u) in enumerate(zip(names, uploads))]
    try:
        rows = await state.run(_save_and_score, state, [u.file for u in uploads], pairs, folder,
                               windows=windows, top_k=top_k, **mode)
    finally:
        remove_dir(folder)
        for u in uploads:
            await u.close()
    scored = [r for r in rows if "error" not in r]
    if scored:
        return JSONResponse([{k: v for k, v in r.items() if k != "status"} for r in rows])
    why = "; ".join(f"{r['path']}: {r['error']}" for r in rows)
    return JSONResponse({"error": f"no file could be scored: {why}",
                         "results": [{"path": r["path"], "error": r["error"]} for r in rows]}, rows[0]["status"])


def _save_and_score(state: ServeState, sources: list, pairs: list[tuple[str, Path]], folder: str, *,
                    windows: bool, top_k: int | None, **mode: Any) -> list[dict]:
    """Worker job: spooled uploads to disk, scored, and the folder removed whatever happens."""
    try:
        for src, (_, path) in zip(sources, pairs):
            src.seek(0)
            save_stream(src, path)
        return _score(state, pairs, windows=windows, top_k=top_k, **mode)
    finally:
        remove_dir(folder)


def _score(state: ServeState, pairs: list[tuple[str, Path]], *, windows: bool, top_k: int | None,
           segments: str | None = None, speakers: int | str | None = None) -> list[dict]:
    if state.predictor is None:
        raise HTTPException(503, state.not_ready())
    k = top_k or state.settings.top_k
    if segments == "vad":
        return score_conversations(state.predictor, pairs, settings=state.settings, top_k=k, speakers=speakers)
    return score_files(state.predictor, pairs, settings=state.settings, top_k=k,
                       windows=windows or segments == "windows")


async def _predict_body(state: ServeState, request: Request, *, windows: bool, top_k: int | None,
                        filename: str | None, **mode: Any) -> JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and not (ctype.startswith("audio/") or ctype in RAW_TYPES or ctype in AUDIO_SUFFIXES):
        raise HTTPException(415, f"Content-Type {ctype} is not audio; send the file's bytes as audio/* "
                                 f"(e.g. audio/wav) or {RAW_TYPES[0]}")
    folder = new_upload_dir(state.settings)
    try:
        name = upload_name(filename, 0) if filename else "body" + AUDIO_SUFFIXES.get(ctype, "")
        path = temp_path(folder, 0, name, ctype)
        with open(path, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        rows = await state.run(_score, state, [(name, path)], windows=windows, top_k=top_k, **mode)
    finally:
        remove_dir(folder)
    row = rows[0]
    if "error" in row:
        return JSONResponse({"error": f"{row['path']}: {row['error']}"}, row["status"])
    return JSONResponse(row)


def model_info(state: ServeState) -> dict:
    """What ``GET /v1/model`` answers: labels, scheme, backend, limits and each model's facts."""
    p = state.predictor
    if p is None:  # Guard answers 503 before this route runs without a model; a race is still a 503
        raise HTTPException(503, state.not_ready())
    s = state.settings
    return {"labels": list(p.scheme.labels), "scheme": p.scheme.name, "backend": state.backend,
            "window_seconds": p.window_seconds, "ensemble": len(p.members),
            "limits": {"max_upload_mb": round(s.max_upload_bytes / 2**20, 2), "max_seconds": s.max_seconds,
                       "workers": s.workers, "auth": bool(s.api_key)},
            "models": [_source_info(src, m.family.family) for src, m in zip(p.sources, p.members)]}


TRAINING_KEYS = ("model_source", "best_metric", "global_step", "train_seconds", "max_seconds", "temperature",
                 "temperature_in_weights", "seed")


def _source_info(src: Any, family: str) -> dict:
    meta = src.meta or {}
    info = {"name": Path(str(src.ref)).name or str(src.ref), "family": family or getattr(src.config, "model_type", ""),
            "model_type": getattr(src.config, "model_type", ""), "temperature": src.temperature,
            "max_seconds": src.max_seconds, "assumed": list(src.defaults)}
    if meta:
        training = {k: meta[k] for k in TRAINING_KEYS if k in meta}
        metrics = Path(str(src.ref)) / "train_metrics.json"
        if metrics.is_file():
            try:
                training["metrics"] = {k: v for k, v in json.loads(metrics.read_text()).items()
                                       if isinstance(v, (int, float))}
            except (OSError, ValueError):
                pass
        info["training"] = json.loads(json.dumps(training, default=str))
    return info
