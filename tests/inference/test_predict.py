"""Prediction: agreement with transformers.pipeline, batching/padding/window parity, bad files."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from emovox.data.audio import load_audio
from emovox.inference.predict import Predictor, expand_inputs
from emovox.testing import make_broken_files, write_tone


# The CLI as `emovox` runs it, then which packages of the training and evaluation stack it imported
CLI_WITH_IMPORTS = """
import json, sys
from emovox.cli import main
code = main(sys.argv[1:])
stack = {"pandas", "sklearn", "matplotlib", "datasets", "peft", "optuna", "ray", "onnx", "audiomentations", "opensmile"}
sys.stderr.write("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & stack)) + "\\n")
sys.exit(code)
"""


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run_dir(tiny_run)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return [write_tone(d / f"c{i}.wav", 0.4 + 0.17 * i, freq=120 + 40 * i, seed=i, sr=(16000, 22050, 48000)[i % 3],
                       channels=1 + i % 2) for i in range(6)]


def test_agrees_with_transformers_pipeline(tiny_run, predictor, clips, real_data):
    from transformers import pipeline

    pipe = pipeline("audio-classification", model=str(tiny_run), device="cpu")
    files = [str(c) for c in clips] + [str(p) for p in sorted((real_data / "ravdess48k-originals").glob("*.wav"))[:3]]
    rows = list(predictor.predict_files(files, top_k=6))
    for f, row in zip(files, rows):
        ref = pipe(load_audio(f), top_k=6)
        assert row["label"] == ref[0]["label"]
        ours = {t["label"]: t["score"] for t in row["top_k"]}
        for r in ref:
            assert ours[r["label"]] == pytest.approx(r["score"], abs=1e-4)


@pytest.mark.parametrize("max_pad", [1.0, 2.0])
def test_batched_equals_single(tiny_run, clips, max_pad):
    """Default (equal lengths only) and padded batches with a mask (up to 2x) both match one clip per call."""
    predictor = Predictor.from_run_dir(tiny_run, max_pad=max_pad)
    waves = [load_audio(c) for c in clips]
    batched = predictor.probs(waves)
    single = np.stack([predictor.probs([w])[0] for w in waves])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_batches_side_by_side_equal_one_at_a_time_and_restore_torch_threads(tiny_run, clips):
    """Two workers on one thread each score what one worker on all threads does; torch's thread
    count is back where it was afterwards, also after concurrent callers overlap."""
    from concurrent.futures import ThreadPoolExecutor

    waves = [load_audio(c) for c in clips] * 3
    before = torch.get_num_threads()
    predictor = Predictor.from_run_dir(tiny_run, threads=2)
    member = predictor.members[0]
    assert member.workers == 2
    parallel = predictor.probs(waves)
    assert torch.get_num_threads() == 2
    member.workers = 1
    serial = predictor.probs(waves)
    np.testing.assert_allclose(parallel, serial, atol=1e-6)
    member.workers = 2
    with ThreadPoolExecutor(3) as pool:
        for got in pool.map(lambda _: predictor.probs(waves), range(6)):
            np.testing.assert_allclose(got, serial, atol=1e-6)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)


def test_padding_does_not_change_a_clip(tiny_run):
    from transformers import AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(tiny_run).eval()
    x = torch.randn(1, 9000)
    padded = torch.cat([x, torch.zeros(1, 7000)], dim=1)
    mask = torch.cat([torch.ones(1, 9000), torch.zeros(1, 7000)], dim=1).long()
    with torch.inference_mode():
        a = model(x, attention_mask=torch.ones(1, 9000, dtype=torch.long)).logits
        b = model(padded, attention_mask=mask).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_windows_for_long_clips_and_whole_for_short(tiny_run, tmp_path):
    predictor = Predictor.from_run_dir(tiny_run, window_seconds=1.0)
    short = write_tone(tmp_path / "short.wav", 0.8, seed=3)
    long = write_tone(tmp_path / "long.wav", 3.3, seed=4)
    rows = list(predictor.predict_files([short, long], windows=True))
    assert rows[0]["path"].endswith("short.wav") and "start" not in rows[0]
    whole = predictor.probs([load_audio(short)])[0]
    assert rows[0]["score"] == pytest.approx(float(whole.max()), abs=1e-6)
    win_rows = [r for r in rows[2:] if "start" in r]
    assert rows[1]["path"].endswith("long.wav") and len(win_rows) == 6  # 0,0.5,...,2.0 then end-aligned 2.3
    assert win_rows[-1]["end"] == pytest.approx(3.3, abs=1e-3)
    mean = np.mean([[t["score"] for t in sorted(r["top_k"], key=lambda t: t["label"])] for r in win_rows], axis=0)
    assert rows[1]["score"] <= 1.0 and np.isfinite(mean).all()


def test_streamed_windows_equal_whole_scoring(tiny_run, tmp_path):
    """A clip under the window length gives the same probabilities through the streamed-window
    path as scored whole; a long one gives the mean of its windows, each scored as a clip."""
    predictor = Predictor.from_run_dir(tiny_run, window_seconds=1.0)
    short = write_tone(tmp_path / "short.wav", 0.7, freq=170, seed=5)
    _, p_stream, err, _ = predictor._score_long(str(short), windows=False)
    assert not err
    np.testing.assert_allclose(p_stream, predictor.probs([load_audio(short)])[0], atol=1e-6)
    long = write_tone(tmp_path / "long.wav", 2.6, freq=140, seed=6)
    wave = load_audio(long)
    _, p_long, _, rows = predictor._score_long(str(long), windows=True)
    bounds = [(int(round(r["start"] * 16000)), int(round(r["end"] * 16000))) for r in rows]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(wave) and len(bounds) == 5  # 0, .5, 1, 1.5, then end-aligned 1.6
    each = predictor.probs([wave[a:b] for a, b in bounds])
    np.testing.assert_allclose(p_long, each.mean(axis=0), atol=1e-6)
    assert np.abs(each[0] - each[-1]).max() > 1e-4  # windows do differ, so the mean is a real check


def test_bad_files_get_error_rows_and_the_rest_continue(predictor, tmp_path, clips):
    bad = make_broken_files(tmp_path / "bad")
    files = [str(clips[0]), str(bad["text"]), str(tmp_path / "missing.wav"), str(bad["nan"]), str(clips[1])]
    rows = list(predictor.predict_files(files))
    assert [("error" in r) for r in rows] == [False, True, True, True, False]
    assert rows[2]["error"] == "file not found" and "label" not in rows[1]


def test_expand_inputs_folders_and_manifests(tiny_corpus, tiny_manifest):
    assert len(expand_inputs([tiny_corpus])) == 48
    assert len(expand_inputs([tiny_manifest])) == 48


def test_cli_predict_jsonl_csv_and_exit_code(tiny_run, clips, tmp_path):
    cmd = [sys.executable, "-c", CLI_WITH_IMPORTS, "predict", str(tiny_run), str(clips[0]), str(clips[1])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [set(x) for x in rows] == [{"path", "label", "score", "top_k"}] * 2
    # scoring with a torch model loads torch and transformers, never the training/evaluation stack (start-up)
    assert json.loads(re.search(r"IMPORTED (.*)", r.stderr).group(1)) == []
    r = subprocess.run(cmd + [str(tmp_path / "nope.wav"), "--format", "csv", "--out", str(tmp_path / "p.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "nope.wav" in r.stderr and "Traceback" not in r.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 3 and table["error"].notna().sum() == 1


def test_ensemble_averages_members(tiny_run, clips):
    ens = Predictor.from_run_dir([tiny_run, tiny_run])
    single = Predictor.from_run_dir(tiny_run)
    waves = [load_audio(c) for c in clips[:3]]
    np.testing.assert_allclose(ens.probs(waves), single.probs(waves), atol=1e-6)


def test_group_norm_models_are_never_padded(tmp_path):
    """wav2vec2-base style (group norm over time, no attention mask): zero padding shifts its
    outputs, so the predictor batches only equal lengths and batching changes nothing."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    from emovox.labels import get_scheme
    from emovox.models.presets import PRESETS
    from emovox.rundir import META

    scheme = get_scheme("crema-d-6")
    cfg = Wav2Vec2Config(**{**PRESETS["tiny"], "feat_extract_norm": "group", "do_stable_layer_norm": False},
                         num_labels=6, id2label=scheme.id2label, label2id=scheme.label2id)
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(cfg)
    with torch.no_grad():
        model.classifier.weight.mul_(50)
    model.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(tmp_path)
    (tmp_path / META).write_text(json.dumps({"scheme": scheme.to_dict(), "max_seconds": 5.0}))
    predictor = Predictor.from_run_dir(tmp_path)
    assert not predictor.members[0].uses_mask
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 8000, 11000, 14000)]
    single = np.stack([predictor.probs([w])[0] for w in waves])
    np.testing.assert_allclose(predictor.probs(waves), single, atol=1e-6)
    x = torch.from_numpy(predictor.members[0].normalise(waves[0]))[None]
    with torch.inference_mode():
        shift = (model.eval()(torch.cat([x, torch.zeros(1, 6000)], 1)).logits - model(x).logits).abs().max()
    assert shift > 1e-3  # the known transformers issue the exact-length batching avoids


def test_cli_export_int8_encoder_then_predict_onnx(tiny_run, clips, tmp_path):
    """`emovox export --int8 --int8-encoder` prints its parity check, and `predict --backend onnx`
    on the export gives every clip a row close to the torch backend's."""
    out = tmp_path / "onnx"
    cli = [sys.executable, "-m", "emovox.cli"]
    exp = subprocess.run([*cli, "export", tiny_run, "--out", out, "--int8", "--int8-encoder"], capture_output=True,
                         text=True, timeout=300)
    assert exp.returncode == 0, exp.stderr
    assert "parity vs torch" in exp.stdout and "top-1 agreement" in exp.stdout
    from emovox.inference.export import cpu_int8_note

    assert ("note: this CPU has no VNNI" in exp.stdout) == (cpu_int8_note() is not None)
    files = [str(c) for c in clips[:3]]
    res = subprocess.run([*cli, "predict", out, *files, "--backend", "onnx", "--top-k", "21"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    ref = list(Predictor.from_run_dir(tiny_run).predict_files(files, top_k=21))
    assert [r["path"] for r in rows] == files
    for got, want in zip(rows, ref):
        scores = {t["label"]: t["score"] for t in got["top_k"]}
        diff = max(abs(scores[t["label"]] - t["score"]) for t in want["top_k"])
        assert diff < 0.01  # int8 rounding (measured ~1e-3); the top scores here are 0.3-0.4, far from uniform


def test_out_file_folder_is_made_and_an_unwritable_out_is_one_line(tmp_path):
    from emovox.errors import BadConfig
    from emovox.inference.output import write_rows

    rows = [{"path": "a.wav", "label": "ANG", "score": 0.9, "top_k": []}, {"path": "b.wav", "error": "empty file"}]
    out = tmp_path / "new" / "deeper" / "rows.jsonl"
    assert write_rows(iter(rows), out=out, fmt="jsonl") == [("b.wav", "empty file")]
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["a.wav", "b.wav"]
    for fmt in ("jsonl", "csv", "parquet"):
        with pytest.raises(BadConfig, match=f"^--out {tmp_path}: cannot be written \\(Is a directory\\)$"):
            write_rows(iter(rows), out=tmp_path, fmt=fmt)
