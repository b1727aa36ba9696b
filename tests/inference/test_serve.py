"""`emovox serve`: every status of the API through FastAPI's TestClient, parity with
Predictor.predict_files on real speech, the streamed body limit, and the web page driven in
headless Chromium (CDP over a websocket) against a real `emovox serve` process."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from emovox.cli import main as cli_main  # noqa: E402
from emovox.errors import BadRunDir  # noqa: E402
from emovox.inference.predict import Predictor  # noqa: E402
from emovox.inference.serve_app import create_app  # noqa: E402
from emovox.inference.serve_io import ServeSettings  # noqa: E402
from emovox.testing import make_broken_files, write_tone  # noqa: E402

from conftest import wait_for  # noqa: E402

KEY = "sekrit-key"


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run_dir(tiny_run)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_files")
    out = {k: v for k, v in make_broken_files(d / "broken").items()
           if k in ("corrupt", "empty", "text", "silence", "zero_samples")}
    out["short"] = write_tone(d / "short.wav", 0.8, freq=200, seed=1)
    out["other"] = write_tone(d / "other.flac", 1.1, freq=310, seed=2, sr=22050)
    out["long"] = write_tone(d / "long.wav", 23.0, freq=170, seed=3)
    return out


def _client(predictor_or_loader, tmp_path=None, **settings) -> TestClient:
    loader = predictor_or_loader if callable(predictor_or_loader) else (lambda: predictor_or_loader)
    if tmp_path is not None:
        (tmp_path / "uploads").mkdir(exist_ok=True)
        settings["tmp_dir"] = str(tmp_path / "uploads")
    return TestClient(create_app(loader, ServeSettings(**settings)))


def _wait_ready(client: TestClient) -> None:
    assert client.app.state.emovox.loaded.wait(60)
    assert client.get("/v1/ready").status_code == 200


@pytest.fixture(scope="module")
def client(predictor, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_tmp")
    with _client(predictor, tmp, max_upload_bytes=2 * 2**20, max_seconds=60, workers=2) as c:
        _wait_ready(c)
        c.uploads = tmp / "uploads"
        yield c


def _upload(*paths, name=None):
    return [("file", (name or Path(p).name, Path(p).read_bytes(), "application/octet-stream")) for p in paths]


# -- liveness, readiness, model ----------------------------------------------------------------
def test_health_ready_and_model(client, predictor):
    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/v1/ready").json() == {"ready": True}
    info = client.get("/v1/model").json()
    assert info["labels"] == list(predictor.scheme.labels)
    assert info["scheme"] == predictor.scheme.name
    m = info["models"][0]
    assert m["family"] == "wav2vec2" and m["training"]["global_step"] > 0
    assert "eval_uar" in m["training"]["metrics"]


def test_503_until_ready_then_200(predictor):
    gate = threading.Event()

    def slow_loader():
        gate.wait(30)
        return predictor

    with _client(slow_loader) as c:
        r = c.get("/v1/ready")
        assert r.status_code == 503 and r.json() == {"error": "model is still loading"}
        assert c.post("/v1/predict/raw", content=b"x").status_code == 503
        assert c.get("/v1/model").status_code == 503
        assert c.get("/v1/health").status_code == 200
        gate.set()
        _wait_ready(c)


def test_load_failure_is_a_503_with_the_reason():
    def broken():
        raise BadRunDir("/nope: run directory not found")

    with _client(broken) as c:
        c.app.state.emovox.loaded.wait(10)
        r = c.get("/v1/ready")
        assert r.status_code == 503 and "run directory not found" in r.json()["error"]


def test_openapi_docs_and_page(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/raw", "/v1/health", "/v1/ready", "/v1/model"} <= set(spec["paths"])
    assert "audio/*" in spec["paths"]["/v1/predict/raw"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="file"' in page.text and "MediaRecorder" in page.text
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", page.text), "the page must load nothing external"


# -- scoring ---------------------------------------------------------------------------------------
def test_real_file_same_as_predict_files(client, predictor, real_data):
    path = sorted((real_data / "ravdess16k" / "Actor_01").glob("*.flac"))[0]
    k = len(predictor.scheme)
    ref = next(predictor.predict_files([path], top_k=k))
    multipart = client.post(f"/v1/predict?top_k={k}", files=_upload(path))
    raw = client.post(f"/v1/predict/raw?top_k={k}&filename={path.name}", content=path.read_bytes(),
                      headers={"Content-Type": "audio/flac"})
    assert multipart.status_code == 200 and raw.status_code == 200
    for row in (multipart.json()[0], raw.json()):
        assert row["path"] == path.name and row["label"] == ref["label"]
        assert row["score"] == pytest.approx(ref["score"], abs=1e-4)
        ours = {t["label"]: t["score"] for t in row["top_k"]}
        for t in ref["top_k"]:
            assert ours[t["label"]] == pytest.approx(t["score"], abs=1e-4)


def test_several_files_bad_ones_get_error_rows(client, files, predictor):
    order = ["short", "text", "empty", "other", "corrupt"]
    r = client.post("/v1/predict", files=[f for k in order for f in _upload(files[k])])
    assert r.status_code == 200
    rows = r.json()
    assert [row["path"] for row in rows] == [files[k].name for k in order]
    assert set(rows[1]) == {"path", "error"} and "not readable as audio" in rows[1]["error"]
    assert "empty file (0 bytes)" in rows[2]["error"]
    assert "not readable as audio" in rows[4]["error"] and str(client.uploads) not in rows[4]["error"]
    refs = list(predictor.predict_files([files["short"], files["other"]]))
    for row, ref in zip((rows[0], rows[3]), refs):
        assert row["label"] == ref["label"] and row["score"] == pytest.approx(ref["score"], abs=1e-4)
        assert set(row) == {"path", "label", "score", "top_k"}


@pytest.mark.parametrize("kind,status,words", [
    ("text", 415, "not readable as audio"), ("corrupt", 415, "not readable as audio"),
    ("empty", 400, "empty file (0 bytes)"), ("silence", 400, "digital silence"), ("zero_samples", 400, "zero samples"),
])
def test_not_audio_status_and_message(client, files, kind, status, words):
    multi = client.post("/v1/predict", files=_upload(files[kind], name=f"clip-{kind}.wav"))
    assert multi.status_code == status and words in multi.json()["error"]
    assert f"clip-{kind}.wav" in multi.json()["error"] and multi.json()["results"][0]["path"] == f"clip-{kind}.wav"
    raw = client.post("/v1/predict/raw", content=files[kind].read_bytes(), headers={"Content-Type": "audio/wav"})
    assert raw.status_code == status and words in raw.json()["error"]


def test_raw_refuses_a_non_audio_content_type(client, files):
    r = client.post("/v1/predict/raw", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/plain is not audio" in r.json()["error"]
    ok = client.post("/v1/predict/raw", content=files["short"].read_bytes(),
                     headers={"Content-Type": "application/octet-stream"})
    assert ok.status_code == 200 and ok.json()["path"] == "body"


def test_windows_timeline_for_long_recordings(client, files, predictor):
    k = len(predictor.scheme)
    r = client.post(f"/v1/predict?windows=true&top_k={k}", files=_upload(files["long"], files["short"]))
    long_row, short_row = r.json()
    ref = list(predictor.predict_files([files["long"]], top_k=k, windows=True))
    assert long_row["label"] == ref[0]["label"] and long_row["score"] == pytest.approx(ref[0]["score"], abs=1e-4)
    assert len(long_row["windows"]) == len(ref) - 1 > 1
    for w, rw in zip(long_row["windows"], ref[1:]):
        assert (w["start"], w["end"]) == (pytest.approx(rw["start"], abs=1e-3), pytest.approx(rw["end"], abs=1e-3))
        assert w["label"] == rw["label"] and w["scores"][rw["label"]] == pytest.approx(rw["score"], abs=1e-4)
        assert set(w["scores"]) == set(predictor.scheme.labels)
    assert len(short_row["windows"]) == 1 and short_row["windows"][0]["start"] == 0.0


def test_longer_than_max_seconds_is_413(predictor, files):
    with _client(predictor, max_seconds=5) as c:
        _wait_ready(c)
        r = c.post("/v1/predict/raw", content=files["long"].read_bytes(), headers={"Content-Type": "audio/wav"})
        assert r.status_code == 413 and "up to 5 s" in r.json()["error"]


# -- limits and fields -----------------------------------------------------------------------------
def test_413_on_a_declared_length_over_the_limit(client):
    r = client.post("/v1/predict/raw", content=b"\0" * (2 * 2**20 + 1), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 413 and "up to 2 MB" in r.json()["error"]


@pytest.mark.parametrize("path,ctype", [("/v1/predict/raw", b"audio/wav"),
                                        ("/v1/predict", b"multipart/form-data; boundary=XyZ")])
def test_413_is_checked_while_the_body_streams(predictor, path, ctype):
    """No Content-Length: the guard counts chunks as they arrive and stops long before the end."""
    chunk, n_chunks = 64 * 1024, 400  # 25 MB offered, the limit is 1 MB
    head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n"
    taken, sent = [], []

    async def receive():
        taken.append(1)
        body = head if len(taken) == 1 and b"multipart" in ctype else b"\1" * chunk
        return {"type": "http.request", "body": body, "more_body": len(taken) < n_chunks}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", ctype)],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    with _client(predictor, max_upload_bytes=2**20) as c:
        _wait_ready(c)
        asyncio.run(c.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert "while streaming" in json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert len(taken) <= 2**20 // chunk + 2 < n_chunks


def test_422_for_bad_fields(client, files):
    assert client.post("/v1/predict", data={"other": "x"}).status_code == 422
    r = client.post("/v1/predict", data={"file": "not a file"})
    assert r.status_code == 422 and "file" in r.json()["error"]
    r = client.post("/v1/predict?top_k=0", files=_upload(files["short"]))
    assert r.status_code == 422 and "top_k" in r.json()["error"]
    assert client.post("/v1/predict?windows=maybe", files=_upload(files["short"])).status_code == 422


def test_401_without_the_key(predictor, files):
    with _client(predictor, api_key=KEY) as c:
        _wait_ready(c)
        body = {"content": files["short"].read_bytes(), "headers": {"Content-Type": "audio/wav"}}
        r = c.post("/v1/predict/raw", **body)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert c.get("/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/predict/raw", content=body["content"],
                      headers={**body["headers"], "Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/v1/model", headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/v1/health").status_code == 200 and c.get("/v1/ready").status_code == 200
        assert c.get("/").status_code == 200


def test_404_and_405_are_json(client):
    assert client.get("/v1/nothing").json() == {"error": "Not Found"}
    r = client.get("/v1/predict")
    assert r.status_code == 405 and "error" in r.json()


class _Broken:
    """A predictor whose scoring fails with a bug (not a user error)."""

    def __init__(self, inner):
        self.scheme, self.members, self.sources = inner.scheme, inner.members, inner.sources

    def scored(self, paths, **kwargs):
        raise RuntimeError("secret internal detail")


def test_500_is_json_without_a_traceback(predictor, files, caplog):
    with _client(_Broken(predictor)) as c:
        _wait_ready(c)
        with caplog.at_level(logging.ERROR, logger="emovox.serve"):
            r = c.post("/v1/predict", files=_upload(files["short"]))
    assert r.status_code == 500 and r.json() == {"error": "internal server error (logged on the server)"}
    assert "Traceback" not in r.text and "secret" not in r.text


class _Slow:
    """Counts how many scoring jobs run at once."""

    def __init__(self, inner):
        self.inner, self.scheme, self.members, self.sources = inner, inner.scheme, inner.members, inner.sources
        self.lock, self.running, self.peak = threading.Lock(), 0, 0

    def scored(self, paths, **kwargs):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.4)
            yield from self.inner.scored(paths, **kwargs)
        finally:
            with self.lock:
                self.running -= 1

    def row(self, *args):
        return self.inner.row(*args)


def test_bounded_pool_and_a_free_event_loop(predictor, files):
    slow = _Slow(predictor)
    with _client(slow, workers=2) as c:
        _wait_ready(c)
        results = []

        def post():
            results.append(c.post("/v1/predict", files=_upload(files["short"])).status_code)

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        assert c.get("/v1/health").status_code == 200
        health_s = time.perf_counter() - t0
        for t in threads:
            t.join(30)
    assert results == [200] * 6
    assert slow.peak == 2
    assert health_s < 0.3, f"the event loop was blocked for {health_s:.2f} s"


def test_temp_files_removed_and_one_log_line_per_request(client, files):
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("emovox.serve")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        client.post("/v1/predict", files=_upload(files["short"], files["text"]))
        client.post("/v1/predict/raw", content=files["corrupt"].read_bytes(), headers={"Content-Type": "audio/wav"})
        client.post("/v1/predict/raw", content=b"\0" * (3 * 2**20), headers={"Content-Type": "audio/wav"})
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
    assert len(lines) == 3
    assert re.fullmatch(r"POST /v1/predict 200 [\d.]+ ms", lines[0])
    assert re.fullmatch(r"POST /v1/predict/raw 415 [\d.]+ ms", lines[1])
    assert re.fullmatch(r"POST /v1/predict/raw 413 [\d.]+ ms", lines[2])
    assert list(client.uploads.iterdir()) == []


# -- the command -----------------------------------------------------------------------------------
def test_cli_user_errors_are_one_line(tiny_run, capsys, monkeypatch):
    monkeypatch.delenv("EMOVOX_TEST_NO_KEY", raising=False)
    assert cli_main(["serve", "/no/such/model"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert cli_main(["serve", str(tiny_run), "--api-key-env", "EMOVOX_TEST_NO_KEY"]) == 2
    assert "EMOVOX_TEST_NO_KEY is not set" in capsys.readouterr().err
    assert cli_main(["serve", str(tiny_run), "--workers", "0"]) == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert cli_main(["serve", str(tiny_run), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "--workers must be at least 1" in err and "cannot listen on 127.0.0.1" in err
    assert "Traceback" not in err


def test_no_writable_temp_dir_is_one_line_at_start(tiny_run, tmp_path, capsys, monkeypatch):
    """A read-only container without a writable /tmp: the server refuses to start, in one line,
    instead of answering every upload with 500."""
    import tempfile

    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a-file" / "tmp"))  # what gettempdir() answers
    assert cli_main(["serve", str(tiny_run), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no writable folder for uploads" in err and "--tmpfs /tmp" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# -- a real server process and a real browser ---------------------------------------------------------
@pytest.fixture(scope="module")
def live_server(tiny_run, tmp_path_factory):
    """`emovox serve` in a subprocess on a free loopback port (it reports the port it got)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", str(tiny_run), "--port", "0", "--workers",
                             "1", "--max-upload-mb", "1"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = wait_for(lambda: _port_in(log_path), 60, proc)
        wait_for(lambda: _ready(url), 60, proc)
        yield url, log_path
    finally:
        _stop(proc)
        log.close()


def _port_in(log_path: Path) -> str | None:
    m = re.search(r"on (http://127\.0\.0\.1:\d+)", log_path.read_text())
    return m.group(1) if m else None


def _ready(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/v1/ready", timeout=2) as r:
            return url if r.status == 200 else None
    except OSError:
        return None




def test_live_server_streamed_413_and_log(live_server):
    """Over a real socket: a chunked body over the limit is answered 413 while the client is
    still sending, and the server logged one line for it."""
    url, log_path = live_server
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        sent, chunk = 0, b"\1" * 65536
        while sent < 20 * 2**20 and not select.select([s], [], [], 0)[0]:
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 20 * 2**20
    assert wait_for(lambda: re.search(r"POST /v1/predict/raw 413 [\d.]+ ms", log_path.read_text()), 5)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class CDP:
    """The few Chrome DevTools Protocol calls the page test needs, over one websocket."""

    def __init__(self, ws):
        self.ws, self.n = ws, 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r["result"].get("value")

    def wait_js(self, expression: str, timeout: float = 20):
        return wait_for(lambda: self.js(expression), timeout)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                             "--window-size=1000,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = wait_for(lambda: _devtools_port(profile), 30, proc)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
        page = next(t for t in targets if t["type"] == "page")
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=20) as ws:
            yield CDP(ws)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _devtools_port(profile: Path) -> int | None:
    f = profile / "DevToolsActivePort"  # chromium writes the port it got here
    text = f.read_text().split() if f.exists() else []
    return int(text[0]) if text else None


def _real_or_tone(tmp_path: Path) -> Path:
    from emovox.testing import test_data_dir

    data = test_data_dir()
    if data is not None:
        return sorted((data / "ravdess16k" / "Actor_01").glob("*.flac"))[0]
    return write_tone(tmp_path / "speech-like.wav", 1.5, freq=180)


def test_page_upload_and_record_in_headless_chromium(live_server, browser, predictor, files, tmp_path):
    url, _ = live_server
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url + "/")
    browser.wait_js("document.readyState === 'complete' && document.getElementById('model').textContent.includes(':')")
    clip = _real_or_tone(tmp_path)
    root = browser.call("DOM.getDocument")["root"]["nodeId"]
    node = browser.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    browser.call("DOM.setFileInputFiles", files=[str(clip)], nodeId=node)
    label = browser.wait_js("document.querySelector('.card[data-label]')?.dataset.label", 30)
    assert label == next(predictor.predict_files([clip]))["label"]
    assert browser.js("document.querySelectorAll('.card .bar').length") == len(predictor.scheme)
    assert browser.js("document.querySelector('.card h2').textContent") == clip.name
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    (tmp_path / "serve_page.png").write_bytes(base64.b64decode(shot))
    assert (tmp_path / "serve_page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.js("document.getElementById('key-box').offsetParent === null"), "no key needed: box hidden"
    # a long recording: the timeline, one line per label
    browser.call("DOM.setFileInputFiles", files=[str(files["long"])], nodeId=node)
    lines = browser.wait_js("document.querySelector('.card h2')?.textContent === 'long.wav' && "
                            "document.querySelectorAll('svg.timeline polyline').length", 30)
    assert lines == len(predictor.scheme)
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    (tmp_path / "serve_page_timeline.png").write_bytes(base64.b64decode(shot))
    # the microphone path: Chromium's fake device, MediaRecorder, WAV encoded in the page
    browser.js("document.getElementById('record').click()")
    browser.wait_js("document.getElementById('record').textContent.includes('Stop')", 10)
    time.sleep(1.2)
    browser.js("document.getElementById('record').click()")
    name = browser.wait_js("[...document.querySelectorAll('.card h2')].map(e => e.textContent).join(',')"
                           ".includes('recording.wav') && document.querySelector('.card').textContent", 30)
    assert "recording.wav" in name, browser.js("document.getElementById('status').textContent")
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    (tmp_path / "serve_page_recording.png").write_bytes(base64.b64decode(shot))
