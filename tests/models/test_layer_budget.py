"""model.layer_budget: the encoder keeps only its first k layers, so the run dir stores and runs
k layers (torch and ONNX), with the scores of the whole encoder under a head reading layers <= k."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emovox.config import ModelConfig
from emovox.errors import BadConfig
from emovox.labels import get_scheme
from emovox.models.backbones import backbone_for
from emovox.models.heads import layer_stats
from emovox.models.layer_budget import budget_features, executed_layers
from emovox.models.loading import load_model, load_trained, save_trained
from emovox.models.tuning import backbone_of
from emovox.testing import save_tiny_whisper, tone

S6 = get_scheme("crema-d-6")
LAYERS, K = 3, 2


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny", layers=LAYERS)


def _stats_model(whisper_dir, budget):
    return load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), pooling="stats", layer_budget=budget),
                      seed=1)


def _inputs(family, fe, waves):
    x, mask = family.pad([family.featurize(fe, w) for w in waves])
    return torch.from_numpy(x), torch.from_numpy(mask)


def _save(model, fe, out):
    backbone_for(model).prepare_to_save(model, fe, window_seconds=5.0)
    save_trained(model, out)
    fe.save_pretrained(out)
    (out / "emovox.json").write_text(json.dumps({"scheme": S6.to_dict(), "max_seconds": 5.0}))
    return out


def test_a_budget_run_dir_scores_as_the_whole_encoder_reading_layers_up_to_k(whisper_dir, tmp_path):
    full, fe = _stats_model(whisper_dir, None)
    cut, _ = _stats_model(whisper_dir, K)
    family = backbone_for(cut)
    assert family.n_layers(cut.config) == K and len(backbone_of(cut).layers) == K
    for name, w in backbone_of(cut).state_dict().items():  # the first K layers' pretrained weights
        torch.testing.assert_close(w, backbone_of(full).state_dict()[name], rtol=0, atol=0)
    waves = [tone(1.3, freq=180.0, seed=1), tone(0.7, freq=260.0, seed=2)]
    x, mask = _inputs(family, fe, waves)
    with torch.no_grad():  # the whole encoder; the head reads layers 0..K (the output norm on layer K)
        enc = backbone_of(full)
        _, states, frames = family.encode(enc, x, mask, all_layers=True)
        top = enc.layer_norm(states[:, K])[:, None]
        expected = cut.classifier(layer_stats(torch.cat([states[:, :K], top, top], dim=1), frames).flatten(1))[0]
    run = _save(cut, fe, tmp_path / "run")
    assert json.loads((run / "config.json").read_text())["encoder_layers"] == K
    again = load_trained(run)
    with torch.no_grad():
        got = again(input_features=x, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert executed_layers(again, lambda: again(input_features=x, attention_mask=mask)) == K
    assert executed_layers(full, lambda: full(input_features=x, attention_mask=mask)) == LAYERS


def _softmaxes(path) -> int:
    import onnx

    return sum(node.op_type == "Softmax" for node in onnx.load(str(path)).graph.node)


def test_the_onnx_export_of_a_budget_run_dir_runs_fewer_layers(whisper_dir, tmp_path):
    from emovox.inference.export import export_onnx

    counts = {}
    for budget in (None, K):
        model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), layer_budget=budget), seed=1)
        run = _save(model, fe, tmp_path / f"run{budget}")
        res = export_onnx(run_dir=run, out=tmp_path / f"onnx{budget}")
        assert res.max_logit_diff < 1e-4
        counts[budget] = _softmaxes(res.onnx_path)  # one attention softmax per executed layer
    assert counts[None] - counts[K] == LAYERS - K


def test_wav2vec2_stock_head_and_bad_budgets():
    model, _ = load_model("tiny", S6, ModelConfig(name="tiny", layer_budget=1, layer_weighting=True))
    assert model.config.num_hidden_layers == 1 and len(backbone_of(model).encoder.layers) == 1
    assert model.layer_weights.shape == (2,)  # hidden states 0..1
    whole, _ = load_model("tiny", S6, ModelConfig(name="tiny", layer_budget=9))  # more than it has: all of them
    assert whole.config.num_hidden_layers == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(BadConfig, match="layer_budget"):
            load_model("tiny", S6, ModelConfig(name="tiny", layer_budget=bad))


def test_budget_features_are_the_layers_up_to_k_with_k_as_the_output():
    stats = np.arange(2 * 2 * 5 * 3, dtype=np.float32).reshape(2, 2, 5, 3)  # 3 layers: states 0..3 + output
    x = budget_features(stats, 1)
    assert x.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(x[:, :, :2], stats[:, :, :2])
    np.testing.assert_array_equal(x[:, :, 2], stats[:, :, 1])
    np.testing.assert_array_equal(budget_features(torch.from_numpy(stats), 1).numpy(), x)


def test_choose_budget_takes_the_smallest_budget_within_the_tolerance():
    """Synthetic stats whose label shows only from layer 2 on: 1 layer is near chance, 2 is enough."""
    from emovox.training.layer_budget import choose_budget

    rng = np.random.default_rng(0)
    n, layers, hidden = 240, 4, 6
    y = np.arange(n) % 3
    stats = rng.normal(size=(n, 2, layers + 2, hidden))
    stats[np.arange(n), 0, 2:, y] += 3.0  # states 2.. (and the output) carry the label, one channel per class
    speakers = np.arange(n) % 6
    folds = [np.isin(speakers, [a, a + 1]) for a in (0, 2, 4)]
    choice = choose_budget(stats, y, folds, tolerance=0.1)
    assert choice.uar[1] < 0.6 and choice.uar[2] > 0.9 and choice.chosen == 2
    assert set(choice.uar) == {1, 2, 3, 4} and len(choice.per_fold[2]) == 3 and choice.best == 4
    assert choose_budget(stats, y, folds, tolerance=0.0).chosen == 4
