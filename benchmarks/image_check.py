"""By-hand check of the serving image (`make image`): its size, the time to /v1/ready, the API and the
page, with scores compared to the same export scored on this machine.

    python -m benchmarks.image_check --image emovox-serve --export runs/whisper-base-onnx [--clips 24]
        [--starts 3] [--compare-venv .venv-runtime]

Starts the image with `docker run -d --network host IMAGE --port PORT`, so it needs a docker daemon and
the export the image was built with; real clips come from EMOVOX_TEST_DATA (RAVDESS actors 13-16),
the page is driven in headless Chromium when one is installed, and `?segments=vad&speakers=auto` is
tried on two actors taking turns (reported; it needs an export made with --conversation, and then
the page's conversation box is driven too). `--starts N` times N starts of the
image (container start to the first 200 on /v1/ready), interleaved with N starts of `emovox serve`
from a runtime venv on this machine when `--compare-venv` names one. Prints a summary (JSON) and
exits 1 when a check fails. Not part of the tests: building an image needs a daemon and a base image.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from benchmarks.loadmon import LoadMonitor


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _post_files(url: str, paths: list[Path], query: str = "") -> tuple[int, object]:
    """POST /v1/predict (``?query``) with each path as a repeated multipart `file` field."""
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{p.name}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
                    for p in paths) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/v1/predict" + (f"?{query}" if query else ""), data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _poll(fn, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"nothing after {timeout} s")


def image_size(image: str) -> dict:
    """The image's size and its layers (MB, as `docker history` counts them, largest first)."""
    layers = [(line + "\t").split("\t")[:2] for line in
              _docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image).splitlines()]
    return {"image_mb": round(int(_docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6, 1),
            "layers": [[size, cmd[:90]] for size, cmd in layers if not size.startswith("0B")]}


def start(image: str, port: int) -> tuple[str, dict]:
    """Run the image: seconds `docker run` took, from `docker run` and from the container's start (its
    process spawned) to the first 200 on /v1/ready."""
    t0 = time.monotonic()
    cid = _docker("run", "-d", "--rm", "--network", "host", image, "--port", str(port))
    t_run = time.monotonic() - t0
    url = f"http://127.0.0.1:{port}"
    _poll(lambda: _get(url + "/v1/ready")[0] == 200, 120, 0.02)
    ready_at, t_ready = datetime.now().astimezone(), time.monotonic() - t0
    # docker gives nanoseconds; datetime takes microseconds
    started_at = _docker("inspect", "-f", "{{.State.StartedAt}}", cid)
    started = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", started_at).replace("Z", "+00:00"))
    return cid, {"docker_run_s": round(t_run, 2), "run_to_ready_s": round(t_ready, 2),
                 "start_to_ready_s": round((ready_at - started).total_seconds(), 2)}


def host_ready(venv: Path, export: Path, port: int) -> float:
    """Seconds from spawning ``VENV/bin/emovox serve EXPORT`` to the first 200 on /v1/ready."""
    t0 = time.monotonic()
    proc = subprocess.Popen([str(venv / "bin" / "emovox"), "serve", str(export), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _poll(lambda: _get(f"http://127.0.0.1:{port}/v1/ready")[0] == 200, 120, 0.02)
        return round(time.monotonic() - t0, 2)
    finally:
        proc.terminate()
        proc.wait(10)


def api_checks(url: str, export: Path, clips: list[Path], work: Path) -> dict:
    """The page, health, model and error statuses, and every clip's scores against this machine's."""
    from emovox.inference.predict import Predictor
    from emovox.testing import make_broken_files

    status, page = _get(url + "/")
    out: dict = {"page": status == 200 and b"<title>emovox" in page}
    out["health"] = _get(url + "/v1/health") == (200, b'{"status":"ok"}')
    labels = json.loads((export / "emovox.json").read_text())["scheme"]["labels"]
    out["model_labels"] = json.loads(_get(url + "/v1/model")[1])["labels"] == labels
    broken = make_broken_files(work / "broken")
    out["statuses"] = {k: _post_files(url, [broken[k]])[0] for k in ("text", "corrupt", "empty", "silence")}
    out["statuses_ok"] = out["statuses"] == {"text": 415, "corrupt": 415, "empty": 400, "silence": 400}
    predictor = Predictor.from_run_dir(export, backend="onnx")
    refs = {Path(r["path"]).name: r for r in predictor.predict_files(clips, top_k=len(labels))}
    rows, t0 = [], time.monotonic()
    for i in range(0, len(clips), 8):
        status, got = _post_files(url, clips[i:i + 8])
        assert status == 200, got
        rows += got
    out["clips"], out["predict_s_per_clip"] = len(rows), round((time.monotonic() - t0) / max(len(rows), 1), 3)
    diffs = [abs(s["score"] - {t["label"]: t["score"] for t in refs[r["path"]]["top_k"]}[s["label"]])
             for r in rows for s in r["top_k"]]
    # the page's "conversation" box: speech segments and speakers, on two actors taking turns (reported;
    # an export made without --conversation answers 400 with what to do)
    status, got = _post_files(url, [conversation_clip(clips, work / "conversation.wav")], "segments=vad&speakers=auto")
    out["conversation"] = [status, [s.get("speaker") for s in got[0]["segments"]] if status == 200 else got]
    out["same_labels"] = all(r["label"] == refs[r["path"]]["label"] for r in rows) and len(rows) == len(clips)
    out["max_score_diff"] = max(diffs) if diffs else None
    return out


def conversation_clip(clips: list[Path], out: Path) -> Path:
    """Two speakers taking turns (two actors' clips, one after the other, with 0.8 s of silence)."""
    import numpy as np
    import soundfile as sf

    a = next(p for p in clips if p.stem.endswith("-13"))
    b = next(p for p in clips if p.stem.endswith("-14"))
    waves = [sf.read(p, dtype="float32")[0] for p in (a, b, a, b)]
    gap = np.zeros(int(0.8 * 16000), dtype="float32")
    sf.write(out, np.concatenate([x for w in waves for x in (w, gap)]), 16000)
    return out


def page_check(url: str, clip: Path, expected: str, shot: Path, talk: Path | None = None) -> dict:
    """Upload ``clip`` on the page in headless Chromium: the card's label and a screenshot; with
    ``talk``, the same with the conversation box ticked: the speaker of each segment drawn."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        return {"browser": "chromium not installed: skipped"}
    from websockets.sync.client import connect

    profile = Path(tempfile.mkdtemp(prefix="emovox-chromium-"))
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--window-size=1000,900", "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        port = _poll(lambda: (profile / "DevToolsActivePort").exists()
                     and int((profile / "DevToolsActivePort").read_text().split()[0]), 30)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
        with connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"],
                     max_size=64 * 2**20) as ws:
            n = 0

            def call(method: str, **params):
                nonlocal n
                n += 1
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while (msg := json.loads(ws.recv(timeout=30))).get("id") != n:
                    pass
                return msg["result"]

            def js(expr: str):
                return call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

            call("Page.enable")
            call("Runtime.enable")
            call("Page.navigate", url=url + "/")
            _poll(lambda: js("document.readyState === 'complete' && "
                             "document.getElementById('model').textContent.includes(':')"), 30)
            node = call("DOM.querySelector", nodeId=call("DOM.getDocument")["root"]["nodeId"], selector="#file")
            call("DOM.setFileInputFiles", files=[str(clip.resolve())], nodeId=node["nodeId"])
            label = _poll(lambda: js("document.querySelector('.card[data-label]')?.dataset.label"), 60)
            shot.write_bytes(base64.b64decode(call("Page.captureScreenshot", format="png")["data"]))
            out = {"browser_label": label, "browser_ok": label == expected, "screenshot": str(shot)}
            if talk is not None:  # the conversation box ticked: one lane per speaker
                call("Page.navigate", url=url + "/")
                _poll(lambda: js("document.readyState === 'complete' && "
                                 "document.getElementById('model').textContent.includes(':')"), 30)
                js("document.getElementById('conversation').checked = true")
                node = call("DOM.querySelector", nodeId=call("DOM.getDocument")["root"]["nodeId"], selector="#file")
                call("DOM.setFileInputFiles", files=[str(talk.resolve())], nodeId=node["nodeId"])
                _poll(lambda: js("document.querySelectorAll('svg.speakers rect.segment').length"), 60, 1.0)
                out["conversation_lanes"] = js("[...document.querySelectorAll('svg.speakers rect.segment')]"
                                               ".map(r => r.dataset.speaker)")
                talk_shot = shot.with_name(shot.stem + "_conversation.png")
                talk_shot.write_bytes(base64.b64decode(call("Page.captureScreenshot", format="png")["data"]))
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="emovox-serve")
    ap.add_argument("--export", type=Path, required=True, help="the export folder the image was built with")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--starts", type=int, default=1, help="timed starts of the image (the last one is checked)")
    ap.add_argument("--compare-venv", type=Path, help="a runtime venv: its `emovox serve` timed beside the image")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/_work/image_check"))
    args = ap.parse_args(argv)
    from emovox.testing import test_data_dir

    data = test_data_dir()
    if data is None:
        raise SystemExit("error: EMOVOX_TEST_DATA is not set (real clips are needed)")
    clips = sorted(p for a in range(13, 17) for p in (data / "ravdess16k" / f"Actor_{a:02d}").glob("*.flac"))
    clips = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"image": args.image, **image_size(args.image)}
    # what others keep busy while this waits (the container's CPU would count as foreign in a monitor
    # around the starts: it is no child of this process)
    with LoadMonitor(every=1.0) as idle:
        time.sleep(6)
    summary["load_before"] = idle.summary()
    starts: list[dict] = []
    for i in range(args.starts):
        if i:
            _docker("stop", cid)
        if args.compare_venv:
            starts.append({"venv_spawn_to_ready_s": host_ready(args.compare_venv, args.export, args.port)})
        cid, timing = start(args.image, args.port)
        starts.append({**timing, "load_1min": round(os.getloadavg()[0], 2)})
    summary["starts"] = starts
    url = f"http://127.0.0.1:{args.port}"
    try:
        summary["api"] = api_checks(url, args.export, clips, args.out)
        talk = args.out / "conversation.wav" if summary["api"]["conversation"][0] == 200 else None
        summary["page"] = page_check(url, clips[0], _post_files(url, clips[:1])[1][0]["label"],
                                     args.out / "image_page.png", talk)
    finally:
        summary["log_tail"] = subprocess.run(["docker", "logs", "--tail", "3", cid], capture_output=True,
                                             text=True).stderr.splitlines()
        _docker("stop", cid)
    print(json.dumps(summary, indent=1))
    api, page = summary["api"], summary["page"]
    ok = (all(api[k] for k in ("page", "health", "model_labels", "statuses_ok", "same_labels"))
          and api["max_score_diff"] is not None and api["max_score_diff"] <= 1e-4 and page.get("browser_ok", True)
          and page.get("conversation_lanes", [None]) != [])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
