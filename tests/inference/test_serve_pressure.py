"""The server under pressure, over real sockets: a slow-loris upload is cut off (408), a body over
the limit is refused before it is all sent, and 1,000 malformed requests in a row leave the server
answering correctly with bounded memory."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from emovox.testing import write_tone

from conftest import wait_for

pytest.importorskip("uvicorn")




def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v1/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log_path = tmp_path_factory.mktemp("pressure") / "server.log"
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", str(tiny_run), "--port", "0", "--workers",
                             "1", "--max-upload-mb", "1", "--body-timeout", "1"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    try:
        def port():
            m = re.search(r"on http://127\.0\.0\.1:(\d+)", log_path.read_text())
            return int(m.group(1)) if m else None

        p = wait_for(port, 60, proc)
        wait_for(lambda: _ready(f"http://127.0.0.1:{p}"), 60, proc)
        yield p, proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _request(port: int, raw: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return _read_reply(s)


def _read_reply(s: socket.socket, out: bytes = b"") -> bytes:
    """Read one HTTP reply (head and a Content-Length body) from ``s``, given what came already."""
    while not _complete(out):
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def _complete(out: bytes) -> bool:
    head, sep, body = out.partition(b"\r\n\r\n")
    m = re.search(rb"content-length: (\d+)", head, re.I)
    return bool(sep) and bool(m) and len(body) >= int(m.group(1))


def test_slow_loris_upload_is_cut_off(server):
    port, _, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                  b"Content-Length: 100000\r\n\r\nRIFF")
        reply, dribbled = b"", 0
        while not reply and time.monotonic() - started < 12:
            try:
                s.sendall(b"\0")  # one byte every 1.5 s: slower than the 1 s idle limit
                dribbled += 1
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(1.5)
            try:
                reply = s.recv(65536)
            except socket.timeout:
                pass
        reply = _read_reply(s, reply) if reply else reply
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"request body too slow" in reply and time.monotonic() - started < 6


def test_a_steady_trickle_still_hits_the_total_deadline(server):
    port, _, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        s.settimeout(0.5)
        reply = b""
        while not reply and time.monotonic() - started < 25:
            try:
                s.sendall(b"\0" * 10)  # within the idle limit every time, never finishing
                reply = s.recv(65536)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 9 < time.monotonic() - started < 20  # the whole body gets 10 x the idle limit


def test_over_the_limit_is_refused_early(server):
    port, _, _ = server
    reply = _request(port, b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                           b"Content-Length: 50000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413")


MALFORMED = [
    b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 12\r\n\r\nnot audio!!!",
    b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 44\r\n\r\nRIFF\xff\xff\xff\xffWAVEfmt " + b"\x00" * 28,
    b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 20\r\n\r\n--zz\r\ngarbage\r\n--",
    b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /v1/predict/raw?top_k=banana HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 999999999\r\n\r\n",
    b"BREW /v1/predict HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage TLS hello\r\n\r\n",
]


def test_a_thousand_malformed_requests_leave_it_answering(server, tmp_path):
    port, proc, _ = server
    clip = write_tone(tmp_path / "ok.wav", 1.0)
    good = clip.read_bytes()
    good_req = (b"POST /v1/predict/raw HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n"
                % len(good)) + good

    def score() -> dict:
        reply = _request(port, good_req)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        return json.loads(reply.partition(b"\r\n\r\n")[2])

    first = score()
    for raw in MALFORMED * 5:  # warm every error path once before measuring
        _request(port, raw)
    rss = psutil.Process(proc.pid).memory_info().rss
    statuses = {}
    for i in range(1000):
        reply = _request(port, MALFORMED[i % len(MALFORMED)])
        code = reply[9:12].decode(errors="replace") if reply.startswith(b"HTTP/1.1") else "closed"
        statuses[code] = statuses.get(code, 0) + 1
    grown = psutil.Process(proc.pid).memory_info().rss - rss
    print(f"server RSS {rss / 2**20:.0f} MB, +{grown / 2**20:.1f} MB after 1,000 malformed requests: {statuses}")
    assert "500" not in statuses and set(statuses) <= {"400", "404", "405", "413", "415", "422", "closed"}, statuses
    assert grown < 40 * 2**20, f"RSS grew {grown / 2**20:.1f} MB over 1,000 malformed requests ({statuses})"
    after = score()
    assert after["label"] == first["label"] and after["score"] == pytest.approx(first["score"], abs=1e-6)
