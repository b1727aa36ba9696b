"""The command line: one line per user error, exit code 2, no traceback."""
import subprocess
import sys

import pytest

from emovox.testing import make_broken_files, make_crema_corpus


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emovox.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_prepare_bad_corpus_lists_every_file_exit_2(tmp_path):
    root = tmp_path / "c"
    make_crema_corpus(root, actors=range(1001, 1005), emotions=("ANG", "SAD"), seconds=0.3)
    bad = make_broken_files(root)
    r = run("prepare", "--corpus", "crema-d", "--root", root, "--out", tmp_path / "o", "--workers", "1")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for p in bad.values():
        assert sum(p.name in line for line in r.stderr.splitlines()) == 1
    r = run("prepare", "--corpus", "crema-d", "--root", root, "--out", tmp_path / "o", "--drop-invalid")
    assert r.returncode == 0, r.stderr
    assert "dropped 8 invalid" in r.stderr and "Data report" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["prepare", "--corpus", "nope", "--root", ".", "--out", "x"], "valid: crema-d"),
    (["prepare", "--corpus", "crema-d", "--root", "/does/not/exist", "--out", "x"], "not found"),
    (["evaluate", "/does/not/exist", "--manifest", "m.csv", "--out", "x"], "/does/not/exist is not a directory"),
    (["train", "--manifest", "m.csv", "--out", "x", "training.bogus=1"], "training.bogus"),
    (["train", "--manifest", "/no/manifest.csv", "--out", "x"], "manifest not found"),
])
def test_user_errors_are_one_line(args, needle, tmp_path):
    (tmp_path / "m.csv").write_text("path,label,split\n")
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_demo_data_and_init_model(tmp_path):
    r = run("init-model", "--size", "tiny", "--scheme", "crema-d-21", "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tmp_path / "m")
    assert cfg.num_labels == 21 and cfg.id2label[0] == "ANG_HI" and cfg.hidden_size == 32


def test_prepare_label_mapping_options(tmp_path):
    from emovox.testing import make_emovo_corpus, write_tone

    root = tmp_path / "emovo"
    make_emovo_corpus(root, speakers=("f1", "f2", "m1", "m2"), emotions=("gio", "rab", "neu"), sentences=("b1", "b2"))
    # the EMOVO adapter lands in canonical names; a map merges or renames further, a scheme restricts
    r = run("prepare", "--corpus", "emovo", "--root", root, "--out", tmp_path / "o", "--workers", "1",
            "--label-map", "happy=positive,angry=negative", "--scheme", "positive,negative", "--unmapped", "drop")
    assert r.returncode == 0, r.stderr
    assert "dropped 8 clip(s) with unmapped labels: neutral (8)" in r.stderr and "## Label mapping" in r.stdout
    # the same files as a folder corpus in EMOVO's codes: unknown labels are one line, exit 2
    for code in ("gio", "rab", "xyz"):
        write_tone(tmp_path / "folders" / code / "a.wav", 0.2)
    r = run("prepare", "--corpus", "folders", "--root", tmp_path / "folders", "--out", tmp_path / "o2", "--canonical")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "xyz (1)" in lines[0] and "--unmapped drop" in lines[0], r.stderr
    r = run("prepare", "--corpus", "folders", "--root", tmp_path / "folders", "--out", tmp_path / "o2",
            "--label-map", "gio=happy,rab")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "'rab' is not FROM=TO" in lines[0], r.stderr


def test_an_out_that_is_a_file_is_one_line(tiny_run, tiny_manifest, tmp_path):
    """Filesystem refusals on the user's paths (an --out folder that is a file, a folder under a
    file) are one line naming the path, exit code 2; other OSErrors are not caught."""
    from emovox.cli import main
    from emovox.errors import user_error_line

    taken = tmp_path / "taken"
    taken.write_text("x")
    for args in (["evaluate", tiny_run, "--manifest", tiny_manifest, "--out", taken],
                 ["baseline", "--manifest", tiny_manifest, "--out", taken / "sub"]):
        r = run(*args)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(lines) == 1 and lines[0].startswith(f"error: {taken}"), r.stderr
    assert main(["evaluate", str(tiny_run), "--manifest", str(tiny_manifest), "--out", str(taken)]) == 2
    with pytest.raises(OSError):
        user_error_line(OSError("no path named"))
