"""emovox adapt: the head's standardisation re-estimated on unlabelled target clips, exactly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from emovox.cli import main
from emovox.errors import BadRunDir
from emovox.models.loading import load_trained
from emovox.training.adapt import adapt
from emovox.training.feature_scaling import load_unscaled_head
from emovox.training.train import train

PROBE = ["model.freeze_backbone=true", "model.cache_features=true", "model.pooling=stats", "training.head_solver=ridge",
         "training.head_l2=1.0", "training.head_refit=true", "augment.enabled=false", "data.max_seconds=1.0"]


@pytest.fixture(scope="module")
def probe_run(tiny_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapt") / "run"
    return train(manifest=tiny_manifest, out=out, model="tiny", overrides=PROBE, progress=False).run_dir


def _first_layer(model) -> torch.nn.Linear:
    return next(m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear))


def test_adapting_to_the_training_clips_gives_back_the_same_model(probe_run, tiny_manifest, tmp_path):
    df = pd.read_csv(tiny_manifest)
    seen = df[df["split"].isin(["train", "validation"])]  # a refit run standardised on train + validation
    seen[["path"]].to_csv(tmp_path / "seen.csv", index=False)
    res = adapt(run=probe_run, targets=[tmp_path / "seen.csv"], out=tmp_path / "same", progress=False)
    assert res.clips == len(seen) and not res.skipped
    a, b = load_trained(probe_run).state_dict(), load_trained(res.run_dir).state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4, rtol=1e-4), name


def test_adapted_head_centres_the_target(probe_run, tiny_manifest, tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    rng = np.random.default_rng(0)
    for p in pd.read_csv(tiny_manifest)["path"][:24]:  # another "microphone": louder, noisier, tilted
        wave, sr = sf.read(p, dtype="float32")
        wave = 1.8 * np.convolve(wave, [1.0, -0.6], mode="same") + 0.02 * rng.standard_normal(len(wave))
        sf.write(target / p.split("/")[-1], np.clip(wave, -1, 1).astype(np.float32), sr)
    (target / "broken.wav").write_bytes(b"not audio")
    assert main(["adapt", str(probe_run), str(target), "--out", str(tmp_path / "ad")]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.wav" in err and "only 24 target clips" in err
    meta = json.loads((tmp_path / "ad" / "emovox.json").read_text())
    assert meta["adaptation"]["clips"] == 24 and meta["adaptation"]["skipped"] == 1
    assert "## Adaptation" in (tmp_path / "ad" / "README.md").read_text()
    # the adapted first layer maps the target's mean features to the head's fitted bias: centred
    from emovox.training.features import clip_features
    from emovox.config import from_dict
    from emovox.labels import LabelScheme
    from emovox.models.loading import feature_extractor_for

    model = load_trained(tmp_path / "ad")
    cfg, scheme = from_dict(meta["config"]), LabelScheme.from_dict(meta["scheme"])
    frame = pd.DataFrame({"path": sorted(map(str, target.glob("*.flac"))) + sorted(
        str(p) for p in target.glob("*.wav") if p.name != "broken.wav"), "label": scheme.labels[0], "duration": 1.0})
    x = clip_features(model, feature_extractor_for(tmp_path / "ad", model.config), frame, scheme, cfg, progress=False)
    layer = _first_layer(model)
    with torch.no_grad():
        mean_out = layer(x.flatten(1)).mean(dim=0)
    fitted_bias = next(t for n, t in load_unscaled_head(tmp_path / "ad").items() if n.endswith("bias"))
    assert torch.allclose(mean_out, fitted_bias, atol=1e-3), (mean_out, fitted_bias)
    assert main(["predict", str(tmp_path / "ad"), str(target)]) == 1  # the broken file: an error row, exit 1


def test_adapt_refuses_a_fine_tuned_run_in_one_line(tiny_run, tmp_path, capsys):
    with pytest.raises(BadRunDir, match="cached frozen features"):
        adapt(run=tiny_run, targets=[tmp_path], out=tmp_path / "x", progress=False)
    assert main(["adapt", str(tiny_run), str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_speaker_adapted_logits_use_each_speakers_clips_or_else_the_whole_set(probe_run, tiny_manifest):
    from emovox.config import from_dict
    from emovox.labels import LabelScheme
    from emovox.models.heads import pooled_logits
    from emovox.models.loading import feature_extractor_for
    from emovox.training.adapt import speaker_adapted_logits
    from emovox.training.feature_scaling import refold
    from emovox.training.features import clip_features

    meta = json.loads((probe_run / "emovox.json").read_text())
    cfg, scheme = from_dict(meta["config"]), LabelScheme.from_dict(meta["scheme"])
    model, df = load_trained(probe_run), pd.read_csv(tiny_manifest)
    x = clip_features(model, feature_extractor_for(probe_run, model.config), df.assign(duration=1.0), scheme, cfg,
                      progress=False)
    unscaled = load_unscaled_head(probe_run)
    speakers = df["speaker"].astype(str)
    small = speaker_adapted_logits(model, unscaled, x, speakers, min_clips=len(df) + 1)  # every speaker too small
    refold(model, unscaled, x)
    with torch.no_grad():
        whole = pooled_logits(model, x).logits.numpy()
    assert np.allclose(small, whole, atol=1e-5)
    own = speaker_adapted_logits(model, unscaled, x, speakers, min_clips=2)
    first = np.flatnonzero(speakers == speakers[0])
    refold(model, unscaled, x[torch.from_numpy(first)])
    with torch.no_grad():
        alone = pooled_logits(model, x[torch.from_numpy(first)]).logits.numpy()
    assert np.allclose(own[first], alone, atol=1e-5) and not np.allclose(own, whole, atol=1e-3)


def test_a_probe_that_skips_the_input_embeddings_saves_and_adapts_with_zero_weight_there(tiny_manifest, tmp_path):
    run = train(manifest=tiny_manifest, out=tmp_path / "skip", model="tiny", progress=False,
                overrides=[*PROBE, "model.stats_skip_states=1"]).run_dir
    assert json.loads((run / "emovox_head.json").read_text())["skip_states"] == 1
    model = load_trained(run)
    states = model.family.n_layers(model.config) + 2
    w = _first_layer(model).weight.detach().view(-1, 2, states, model.family.hidden_size(model.config))
    assert w[:, :, 0].abs().max() == 0 and w[:, :, 1:].abs().max() > 0
    df = pd.read_csv(tiny_manifest)
    df[["path"]].to_csv(tmp_path / "all.csv", index=False)
    adapted = load_trained(adapt(run=run, targets=[tmp_path / "all.csv"], out=tmp_path / "adapted", progress=False).run_dir)
    w2 = _first_layer(adapted).weight.detach().view_as(w)
    assert w2[:, :, 0].abs().max() == 0 and not torch.allclose(w2, w)
