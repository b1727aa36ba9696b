"""One training-throughput measurement, run in a fresh process so its peak RSS is its own.

``python -m benchmarks.train_child '<json spec>'`` trains for ``warmup + steps`` optimizer steps,
prints ``BENCH_RESULT {...}`` and exits at once (no evaluation, no saving).

Two sides:

* ``recipe`` -- the reference recipe done the plain way: ``Wav2Vec2ForSequenceClassification``,
  a Dataset that reads each clip with soundfile and pads/truncates it to 5 s with the feature
  extractor (``padding="max_length"``), HF ``Trainer`` defaults, feature encoder trainable.
  ``levers`` switches on emovox's speed levers one at a time on this same code.
* ``emovox`` -- ``emovox.training.train.train()`` itself with ``configs/crema-d-21.yaml`` (+ overrides).

``augment: true`` gives the recipe side the config's augmentation as a plain script writes it: an
``audiomentations.Compose`` of the same transforms and probabilities (drawing from the global RNGs the
Trainer seeds), applied in ``__getitem__``. ``whole: true`` runs the whole command instead of leaving
after the timed steps: ``steps`` optimizer steps in all, one evaluation on the validation clips and
saving the model (the parent times spawn to exit).

Throughput counts real audio only (each clip up to 5 s; padding is not audio), measured from the
end of the last warm-up step to the end of the last measured step.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, RandomSampler  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from benchmarks.common import ROOT, SAMPLE_RATE, TreePssSampler, emit, peak_rss_mb  # noqa: E402

RECIPE_CONFIG = ROOT.parent / "configs" / "crema-d-21.yaml"
NO_LEVERS = {"dynamic": False, "group": False, "freeze": False, "cache": False, "workers": 0}


class StepTimer(TrainerCallback):
    """Times optimizer steps and counts the real audio each forward pass sees; emits and exits
    after ``warmup + steps`` steps."""

    def __init__(self, spec: dict, pss: TreePssSampler):
        self.spec, self.pss = spec, pss
        self.warmup, self.steps = int(spec["warmup"]), int(spec["steps"])
        self.ends: list[float] = []
        self.cpu: list[float] = []  # this process's CPU seconds (all threads) at each step end
        self.real: list[int] = []
        self.padded: list[int] = []
        self.begin = 0.0

    def attach(self, model: torch.nn.Module) -> None:
        def pre_hook(module, args, kwargs):
            n_real = kwargs.pop("n_real", None)
            values = kwargs.get("input_values", args[0] if args else None)
            if module.training and n_real is not None:
                self.real.append(int(n_real.sum()))
                self.padded.append(int(values.numel()))
            return args, kwargs

        model.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())
        self.cpu.append(time.process_time())
        if len(self.ends) == self.warmup + self.steps:
            self.finish()

    def finish(self) -> None:
        if self.spec.get("whole"):  # the whole command: the caller emits after evaluating and saving
            self.result = self.measure()
            self.result["train_end"] = self.ends[-1]
            return
        emit(self.measure())

    def measure(self) -> dict:
        w, n = self.warmup, self.steps
        wall = self.ends[w + n - 1] - self.ends[w - 1]
        audio = sum(self.real[w:w + n]) / SAMPLE_RATE
        padded = sum(self.padded[w:w + n]) / SAMPLE_RATE
        steps = np.diff(self.ends[w - 1:w + n])
        return {
            "audio_s": round(audio, 2), "padded_s": round(padded, 2), "wall_s": round(wall, 3),
            "cpu_s": round(self.cpu[w + n - 1] - self.cpu[w - 1], 2),
            "audio_per_s": round(audio / wall, 3), "step_s_median": round(float(np.median(steps)), 3),
            "warmup_s": round(self.ends[w - 1] - self.begin, 2), "setup_s": round(self.begin - T0, 2),
            "peak_rss_mb": peak_rss_mb(), "peak_tree_pss_mb": self.pss.stop(),
            "forwards": len(self.real), "spec": self.spec,
        }


# --- the plain reference recipe (and its levers) ----------------------------------------------

class RecipeDataset(Dataset):
    """Reads each clip with soundfile and pads/truncates it to ``max_seconds`` with the feature
    extractor, as the reference recipe did. Levers: ``dynamic`` (no padding here; the collator
    pads to the batch's longest clip) and ``cache`` (decode every clip once, up front)."""

    def __init__(self, df: pd.DataFrame, label_ids: list[int], fe, *, max_seconds: float, dynamic: bool, cache: bool,
                 augment=None):
        self.paths, self.labels, self.fe = list(df["path"]), label_ids, fe
        self.augment = augment  # an audiomentations Compose (global RNGs), as a plain script has it
        self.max_len = int(max_seconds * SAMPLE_RATE)
        self.dynamic = dynamic
        self.lengths = [int(min(d, max_seconds) * SAMPLE_RATE) for d in df["duration"]]
        self.waves = [self._read(i)[: self.max_len] for i in range(len(self.paths))] if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        wave, sr = sf.read(self.paths[i], dtype="float32", always_2d=True)
        if sr != SAMPLE_RATE:
            raise ValueError(f"{self.paths[i]}: {sr} Hz; the benchmark corpora are 16 kHz")
        return wave.mean(axis=1)

    def __getitem__(self, i: int) -> dict:
        wave = self.waves[i] if self.waves is not None else self._read(i)
        if self.augment is not None:
            wave = self.augment(samples=wave, sample_rate=SAMPLE_RATE)
        n = min(len(wave), self.max_len)
        if self.dynamic:
            enc = self.fe(wave[: self.max_len], sampling_rate=SAMPLE_RATE)
        else:
            enc = self.fe(wave, sampling_rate=SAMPLE_RATE, padding="max_length", max_length=self.max_len,
                          truncation=True)
        item = {"input_values": np.asarray(enc["input_values"][0], dtype=np.float32), "labels": self.labels[i],
                "n_real": n}
        if "attention_mask" in enc and not self.dynamic:
            item["attention_mask"] = np.asarray(enc["attention_mask"][0], dtype=np.int64)
        return item


def stack_collate(items: list[dict]) -> dict:
    """What ``default_data_collator`` does for equal-length items."""
    batch = {k: torch.as_tensor(np.stack([it[k] for it in items])) for k in items[0] if k not in ("labels", "n_real")}
    batch["labels"] = torch.as_tensor([it["labels"] for it in items], dtype=torch.long)
    batch["n_real"] = torch.as_tensor([it["n_real"] for it in items])
    return batch


class DynamicCollate:
    """emovox's PadCollator (pad to the batch's longest clip) plus the real-length count."""

    def __init__(self, attention_mask: bool):
        from emovox.data.dataset import PadCollator

        self.inner = PadCollator(attention_mask=attention_mask)

    def __call__(self, items: list[dict]) -> dict:
        batch = self.inner(items)
        batch["n_real"] = torch.as_tensor([it["n_real"] for it in items])
        return batch


def recipe_trainer_class(group: bool, seed: int):
    class RecipeTrainer(Trainer):
        """Plain Trainer; only with the length-grouping lever does it build its own loader."""

        def get_train_dataloader(self):
            if not group:
                return super().get_train_dataloader()
            from emovox.data.dataset import LengthGroupedSampler

            ds = self.train_dataset
            sampler = LengthGroupedSampler(ds.lengths, self._train_batch_size, seed=seed)
            loader = DataLoader(ds, batch_sampler=sampler, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers)
            return self.accelerator.prepare(loader)

    return RecipeTrainer


def run_recipe(spec: dict, out: Path, pss: TreePssSampler) -> StepTimer:
    from transformers import Wav2Vec2ForSequenceClassification

    from emovox.labels import get_scheme
    from emovox.models.presets import preset_config, preset_feature_extractor
    lev = {**NO_LEVERS, **spec.get("levers", {})}
    scheme = get_scheme(spec["scheme"])
    df = pd.read_csv(spec["manifest"], keep_default_na=False)
    val = df[df["split"] == "validation"].reset_index(drop=True)
    df = df[df["split"] == "train"].reset_index(drop=True)
    fe = preset_feature_extractor(spec["size"])
    augment = None
    if spec.get("augment"):
        from emovox.config import load_config
        from emovox.data.augment import reference_pipeline

        augment = reference_pipeline(load_config(RECIPE_CONFIG).augment)
    torch.manual_seed(spec["seed"])
    model = Wav2Vec2ForSequenceClassification(preset_config(spec["size"], scheme, layerdrop=0.0))
    if lev["freeze"]:
        model.freeze_feature_encoder()
    if spec.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
    ds = RecipeDataset(df, [scheme.id(x) for x in df["label"]], fe, max_seconds=spec["max_seconds"],
                       dynamic=lev["dynamic"], cache=lev["cache"], augment=augment)
    whole = bool(spec.get("whole"))
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=spec["batch"], learning_rate=1e-5, weight_decay=0.01,
        max_steps=spec["warmup"] + spec["steps"] + (0 if whole else 2), logging_steps=10_000, save_strategy="no", eval_strategy="no",
        report_to=[], seed=spec["seed"], dataloader_num_workers=lev["workers"], use_cpu=True, disable_tqdm=True,
        remove_unused_columns=False, torch_compile=bool(spec.get("compile")))
    collate = DynamicCollate(bool(getattr(fe, "return_attention_mask", True))) if lev["dynamic"] else stack_collate
    timer = StepTimer(spec, pss)
    timer.attach(model)
    trainer = recipe_trainer_class(lev["group"], spec["seed"])(
        model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[timer])
    trainer.train()
    if whole:
        trainer.evaluate(RecipeDataset(val, [scheme.id(x) for x in val["label"]], fe, max_seconds=spec["max_seconds"],
                                       dynamic=lev["dynamic"], cache=False))
        trainer.save_model(str(out / "model"))
        fe.save_pretrained(str(out / "model"))
    return timer


# --- emovox itself ---------------------------------------------------------------------------

def run_emovox(spec: dict, out: Path, pss: TreePssSampler) -> StepTimer:
    import emovox.training.train as emt

    class CountingPadCollator(emt.PadCollator):
        def __call__(self, items: list[dict]) -> dict:
            batch = super().__call__(items)
            batch["n_real"] = torch.as_tensor([len(it["input_values"]) for it in items])
            return batch

    emt.PadCollator = CountingPadCollator  # this child process only: count real audio per batch
    timer = StepTimer(spec, pss)

    class Attach(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            timer.attach(model)

    overrides = [
        f"data.scheme={spec['scheme']}", f"data.max_seconds={spec['max_seconds']}", "model.layerdrop=0.0",
        f"training.per_device_train_batch_size={spec['batch']}", f"training.seed={spec['seed']}",
        f"training.max_steps={spec['warmup'] + spec['steps'] + (0 if spec.get('whole') else 2)}",
        "training.eval_steps=100000",
        "training.logging_steps=100000", *spec.get("overrides", []),
    ]
    if spec.get("compile"):
        overrides.append("training.torch_compile=true")
    if spec.get("gradient_checkpointing"):
        overrides.append("model.gradient_checkpointing=true")
    emt.train(config=str(RECIPE_CONFIG), manifest=spec["manifest"], out=out / "run", model=spec["size"],
              overrides=overrides, progress=False, callbacks=[Attach(), timer])
    return timer


def main(spec: dict) -> None:
    torch.set_num_threads(int(spec.get("threads", 2)))
    pss = TreePssSampler().start()
    # emit() leaves with os._exit, so the caller owns (and removes) the scratch directory
    tmp = Path(spec.get("tmp") or tempfile.mkdtemp(prefix="emovox-bench-train-"))
    timer = (run_recipe if spec["side"] == "recipe" else run_emovox)(spec, tmp, pss)
    if spec.get("whole") and getattr(timer, "result", None):
        done = time.perf_counter()
        emit({**timer.result, "after_train_s": round(done - timer.result.pop("train_end"), 2),
              "in_process_s": round(done - T0, 2), "peak_rss_mb": peak_rss_mb()})
    raise SystemExit(f"training ended before {spec['warmup'] + spec['steps']} steps were timed")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
