"""Models: freezing, per-part learning rates and schedules, LoRA merged at save, config checks,
and a custom head + LoRA run through the Trainer into a run dir that predicts."""
import pytest
import torch

from emovox.errors import BadConfig, BadRunDir
from emovox.labels import get_scheme
from emovox.config import ModelConfig
from emovox.models.tuning import backbone_of, param_groups
from emovox.models.loading import check_model_config, load_model, load_trained, save_trained

S6 = get_scheme("crema-d-6")



def _backward(model) -> None:
    model.train()
    model(torch.randn(2, 8000), labels=torch.tensor([0, 1])).loss.backward()


def test_frozen_layers_get_no_gradient_and_the_rest_do():
    model, _ = load_model("tiny", S6, ModelConfig(freeze_layers=1, freeze_feature_encoder=False, layerdrop=0.0))
    _backward(model)
    base = model.wav2vec2
    frozen = [base.encoder.layers[0], base.feature_projection, base.encoder.pos_conv_embed]
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in base.encoder.layers[1].parameters())
    assert base.feature_extractor.conv_layers[0].conv.weight.grad is not None  # below the frozen layers, still trains
    assert model.classifier.weight.grad is not None
    with pytest.raises(BadConfig, match=r"freeze_layers=3 .* valid: 0\.\.2"):
        load_model("tiny", S6, ModelConfig(freeze_layers=3))


@pytest.mark.parametrize("kw", [dict(), dict(pooling="attentive", layer_weighting=True)])
def test_freeze_backbone_leaves_only_the_head_trainable(kw):
    model, _ = load_model("tiny", S6, ModelConfig(freeze_backbone=True, **kw))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    in_backbone = {id(p) for p in backbone_of(model).parameters()}
    assert trainable and all(id(p) not in in_backbone for n, p in model.named_parameters() if n in trainable)
    assert len(trainable) == sum(1 for p in model.parameters() if id(p) not in in_backbone)
    _backward(model)
    assert all(p.grad is None for p in backbone_of(model).parameters())


def _trainer(model, tmp_path, head_lr, **args):
    from transformers import TrainingArguments

    from emovox.training.train import trainer_class, trainer_kwargs

    trainer = trainer_class()(model=model, args=TrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-5, weight_decay=0.01, report_to=[], use_cpu=True,
        **trainer_kwargs(args)))
    trainer.head_learning_rate = head_lr
    return trainer


def test_trainer_optimizer_has_head_and_backbone_learning_rates(tmp_path):
    model, _ = load_model("tiny", S6, ModelConfig(layer_weighting=True))
    groups = param_groups(model, 1e-5, 1e-3, 0.01)
    head = {id(p) for n, p in model.named_parameters() if n.startswith(("projector", "classifier", "layer_weights"))}
    for g in groups:
        assert g["lr"] == (1e-3 if g["name"].startswith("head") else 1e-5)
        assert all((id(p) in head) == g["name"].startswith("head") for p in g["params"])
        assert g["weight_decay"] == (0.0 if g["name"].endswith("no_decay") else 0.01)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    opt = _trainer(model, tmp_path, 1e-3).create_optimizer()
    assert sorted(g["lr"] for g in opt.param_groups) == sorted(g["lr"] for g in groups)
    assert {g["lr"] for g in _trainer(model, tmp_path / "one", None).create_optimizer().param_groups} == {1e-5}


def test_warmup_and_cosine_schedule_scale_both_learning_rates(tmp_path):
    model, _ = load_model("tiny", S6)
    trainer = _trainer(model, tmp_path, 1e-3, lr_scheduler_type="cosine", warmup_ratio=0.2)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(sorted({g["lr"] for g in trainer.optimizer.param_groups}))
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[0] == [0.0] and lrs[2] == pytest.approx([1e-5, 1e-3])  # linear warm-up over 2 steps
    assert lrs[6][1] < lrs[4][1] and lrs[6][1] / lrs[6][0] == pytest.approx(100)  # cosine decay, ratio kept


@pytest.mark.parametrize("kw", [dict(), dict(pooling="attentive", freeze_layers=1)])
def test_lora_trains_adapters_and_head_and_merges_on_save(kw, tmp_path):
    model, _ = load_model("tiny", S6, ModelConfig(lora_r=2, lora_dropout=0.0, **kw), seed=3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = [n for n in trainable if "lora_" not in n]
    assert head and all(not n.startswith(("wav2vec2.", "backbone.")) for n in head)
    lora_layers = {n.split(".lora_")[0] for n in trainable if "lora_" in n}
    n_layers = 2 - kw.get("freeze_layers", 0)
    assert len(lora_layers) == 4 * n_layers  # q, k, v, out projections of each unfrozen layer
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)  # LoRA starts as a no-op (B = 0); make it count
    model.eval()
    x = torch.randn(2, 7000)
    with torch.no_grad():
        adapted = model(x).logits
    save_trained(model, tmp_path)
    loaded = load_trained(tmp_path)
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        merged = loaded(x).logits
    assert (adapted - merged).abs().max() < 1e-5


def test_bad_model_settings_name_the_key():
    with pytest.raises(BadConfig, match="model.pooling 'max'.*mean, attentive"):
        check_model_config(ModelConfig(pooling="max"))
    with pytest.raises(BadConfig, match="lora_r=4.*freeze_backbone"):
        check_model_config(ModelConfig(lora_r=4, freeze_backbone=True))
    with pytest.raises(BadConfig, match="lora_target_modules"):
        load_model("tiny", S6, ModelConfig(lora_r=2, lora_target_modules=["nonexistent_proj"]))
    with pytest.raises(BadRunDir, match="cannot load a model"):
        load_trained("/nonexistent/run")


def test_custom_head_with_lora_trains_and_predicts(tiny_manifest, tmp_path):
    """The Trainer path end to end: checkpoints, best-model restore, merged save, Predictor."""
    import json

    from emovox.models.heads import HEAD_FILE, WEIGHTS_FILE
    from emovox.inference.predict import Predictor
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    out = tmp_path / "run"
    train(manifest=tiny_manifest, out=out, model="tiny", progress=False, overrides=[
        *TINY_TRAIN, "training.max_steps=2", "training.eval_steps=2", "model.pooling=attentive",
        "model.lora_r=2", "training.head_learning_rate=1e-2"])
    assert (out / HEAD_FILE).exists() and (out / WEIGHTS_FILE).exists()
    assert json.loads((out / "emovox.json").read_text())["config"]["training"]["head_learning_rate"] == 0.01
    from safetensors.torch import load_file

    assert not any("lora" in k for k in load_file(str(out / WEIGHTS_FILE)))
    rows = list(Predictor.from_run_dir(out).predict_files(_clips(tiny_manifest)))
    assert rows and all(r["label"] in S6.labels for r in rows)


def _clips(manifest) -> list[str]:
    from emovox.data.manifest import load_manifest

    return list(load_manifest(manifest)["path"][:3])
