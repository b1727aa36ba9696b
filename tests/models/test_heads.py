"""Heads: padding never leaks into any pooling, the multi-task head's loss and composite logits,
custom-head run dirs round-trip, composite manifests train emotion-only schemes."""
import pandas as pd
import pytest
import torch

from emovox.errors import BadConfig, BadLabel
from emovox.models.heads import HEAD_FILE, WEIGHTS_FILE, EmovoxForAudioClassification, MultitaskHead
from emovox.labels import get_scheme
from emovox.config import ModelConfig
from emovox.models.loading import load_model, load_trained, save_trained
from emovox.testing import tone

S21 = get_scheme("crema-d-21")
HEADS = {
    "mean": dict(),
    "mean+layers": dict(layer_weighting=True),
    "attentive": dict(pooling="attentive"),
    "attentive+layers": dict(pooling="attentive", layer_weighting=True),
    "multitask": dict(multitask=True, layer_weighting=True),
}



def _batch(*seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of the given lengths, zero-padded to the longest, with their sample mask."""
    waves = [torch.from_numpy(tone(s, freq=150 + 60 * k, seed=k)) for k, s in enumerate(seconds)]
    n = max(len(w) for w in waves)
    x, mask = torch.zeros(len(waves), n), torch.zeros(len(waves), n, dtype=torch.long)
    for k, w in enumerate(waves):
        x[k, : len(w)], mask[k, : len(w)] = w, 1
    return x, mask


@pytest.mark.parametrize("kind", list(HEADS))
def test_padding_never_changes_a_clip_output(kind):
    model, _ = load_model("tiny", S21, ModelConfig(**HEADS[kind]), seed=1)
    model.eval()
    alone, alone_mask = _batch(0.5)
    padded, padded_mask = _batch(0.5, 0.9)
    with torch.no_grad():
        ref = model(alone, attention_mask=alone_mask).logits[0]
        got = model(padded, attention_mask=padded_mask).logits[0]
        leaked = model(padded).logits[0]  # no mask: the zeros count as frames
    assert (ref - got).abs().max() < 1e-5, kind
    assert (ref - leaked).abs().max() > 1e-4, "the check cannot see padding"


def _factors(batch: int, head: MultitaskHead, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = head.tables
    return tuple(torch.randn(batch, n, generator=g) * 2 for n in (len(t.emotions), 2, len(t.levels)))


def test_multitask_level_loss_ignores_unspecified_intensity():
    head = MultitaskHead(8, S21)
    labels = torch.tensor([S21.id("ANG_XX"), S21.id("HAP_HI"), S21.id("NEU_XX"), S21.id("SAD_LO")])
    e, s, lv = _factors(4, head)
    base = head.loss((e, s, lv), labels)
    for row, should_change in ((0, False), (2, False), (1, True), (3, True)):
        lv2 = lv.clone()
        lv2[row] = torch.tensor([5.0, -3.0, 1.0])
        changed = (head.loss((e, s, lv2), labels) - base).abs() > 1e-6
        assert bool(changed) == should_change, (row, S21.labels[int(labels[row])])


def test_multitask_composite_is_a_log_distribution_consistent_with_factors():
    head = MultitaskHead(8, S21)
    assert head.tables.emotions == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    assert head.tables.levels == ["HI", "LO", "MD"]
    factors = _factors(64, head, seed=3)
    logp = head.composite(factors)
    assert logp.shape == (64, 21)
    assert torch.logsumexp(logp, dim=1).abs().max() < 1e-5
    pe, ps, pl = (torch.softmax(f, dim=1) for f in factors)
    for b in range(64):
        def score(label: str) -> float:
            emo, inten = S21.split(label)
            p = pe[b, head.tables.emotions.index(emo)]
            if inten == "XX":
                return float(p * ps[b, 0])
            return float(p * ps[b, 1] * pl[b, head.tables.levels.index(inten)])
        assert S21.labels[int(logp[b].argmax())] == max(S21.labels, key=score)


def test_multitask_needs_a_composite_scheme():
    with pytest.raises(BadConfig, match="crema-d-6"):
        load_model("tiny", get_scheme("crema-d-6"), ModelConfig(multitask=True))


def test_custom_head_run_dir_round_trips(tmp_path):
    model, fe = load_model("tiny", S21, ModelConfig(pooling="attentive", layer_weighting=True, multitask=True), seed=2)
    with torch.no_grad():
        model.layer_weights.weights.normal_()  # not the uniform start, so a lost weight would show
    model.eval()
    x, mask = _batch(0.4, 0.7)
    with torch.no_grad():
        before = model(x, attention_mask=mask).logits
    save_trained(model, tmp_path)
    assert (tmp_path / HEAD_FILE).exists() and (tmp_path / WEIGHTS_FILE).exists()
    assert not (tmp_path / "model.safetensors").exists()  # stock loaders fail instead of loading a random head
    loaded = load_trained(tmp_path)
    assert isinstance(loaded, EmovoxForAudioClassification) and not loaded.training
    assert loaded.config.id2label[0] == S21.labels[0]
    with torch.no_grad():
        after = loaded(x, attention_mask=mask).logits
    assert torch.equal(before, after)
    fe.save_pretrained(tmp_path)  # a new run can start from this one's backbone
    start, _ = load_model(str(tmp_path), get_scheme("crema-d-6"))
    assert all(torch.equal(v, start.base_model.state_dict()[k]) for k, v in loaded.backbone.state_dict().items())


def test_composite_manifest_trains_an_emotion_scheme():
    from emovox.data.dataset import AudioDataset

    s6 = get_scheme("crema-d-6")
    df = pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"], "label": ["ANG_HI", "NEU_XX", "SAD"],
                       "duration": [1.0, 1.0, 1.0]})
    ds = AudioDataset(df, s6, featurize=None, max_seconds=1.0)
    assert ds.labels == [s6.id("ANG"), s6.id("NEU"), s6.id("SAD")]
    with pytest.raises(BadLabel, match="'XYZ_HI'"):
        AudioDataset(df.assign(label=["XYZ_HI", "ANG", "ANG"]), s6, featurize=None, max_seconds=1.0)
