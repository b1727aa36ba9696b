"""One whole Whisper fine-tuning command, in a fresh process: ``python -m benchmarks.whisper_train_child
'<json spec>'`` trains ``steps`` optimizer steps, evaluates on the validation split once, saves the
model, then prints ``BENCH_RESULT {...}`` with every step's end time (the loop alone = the steps
after ``warmup``).

* ``plain``: the plain Hugging Face way -- ``WhisperForAudioClassification`` from the same encoder
  dir, its feature extractor padding every clip to 30 s, a Dataset reading each clip with
  soundfile, the same layers frozen (front end + the first ``freeze_layers``), HF ``Trainer``
  (batch, lr, steps as emovox), ``trainer.evaluate`` on the validation clips, ``save_model``.
* ``emovox``: ``emovox.training.train.train()`` -- what ``emovox train --config
  configs/whisper-finetune.yaml --model DIR`` runs -- with the same batch, lr, steps.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from benchmarks.common import ROOT, emit, peak_rss_mb  # noqa: E402

CONFIG = ROOT.parent / "configs" / "whisper-finetune.yaml"


class StepTimes(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []
        self.begin = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def plain(spec: dict, out: Path, timer: StepTimes) -> dict:
    import soundfile as sf
    from torch.utils.data import Dataset
    from transformers import Trainer, TrainingArguments, WhisperFeatureExtractor, WhisperForAudioClassification

    from emovox.labels import get_scheme

    scheme = get_scheme("ravdess-8")
    df = pd.read_csv(spec["manifest"], keep_default_na=False)
    fe = WhisperFeatureExtractor.from_pretrained(spec["model"])  # pads to 30 s, as Whisper expects
    id2label = dict(enumerate(scheme.labels))
    model = WhisperForAudioClassification.from_pretrained(
        spec["model"], num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    enc = model.encoder
    for module in (enc.conv1, enc.conv2, enc.embed_positions, *enc.layers[: spec["freeze_layers"]]):
        module.requires_grad_(False)

    class Clips(Dataset):
        def __init__(self, part: pd.DataFrame):
            self.paths, self.labels = list(part["path"]), [scheme.id(x) for x in part["label"]]

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            wave, sr = sf.read(self.paths[i], dtype="float32")
            wave = wave[: int(spec["max_seconds"] * sr)]
            feats = fe(wave, sampling_rate=sr, return_tensors="np")["input_features"][0]
            return {"input_features": feats, "labels": self.labels[i]}

    args = TrainingArguments(output_dir=str(out / "ckpt"), per_device_train_batch_size=spec["batch"],
                             per_device_eval_batch_size=8, learning_rate=spec["lr"], weight_decay=0.01,
                             max_steps=spec["steps"], logging_steps=10_000, save_strategy="no", eval_strategy="no",
                             report_to=[], seed=spec["seed"], use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Clips(df[df["split"] == "train"]),
                      eval_dataset=Clips(df[df["split"] == "validation"]), callbacks=[timer])
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "model"))
    fe.save_pretrained(str(out / "model"))
    return {"eval_loss": metrics.get("eval_loss")}


def emovox(spec: dict, out: Path, timer: StepTimes) -> dict:
    from emovox.training.train import train

    res = train(config=CONFIG, manifest=spec["manifest"], out=out / "run", model=spec["model"], progress=False,
                callbacks=[timer], overrides=[
                    f"training.per_device_train_batch_size={spec['batch']}", f"training.max_steps={spec['steps']}",
                    f"training.learning_rate={spec['lr']}", "training.head_learning_rate=null",
                    "training.warmup_ratio=0.0", "training.eval_steps=100000", "training.logging_steps=100000",
                    f"model.freeze_layers={spec['freeze_layers']}", f"data.max_seconds={spec['max_seconds']}",
                    f"training.seed={spec['seed']}", *spec.get("overrides", [])])
    return {"eval_loss": res.metrics.get("eval_loss")}


def main(spec: dict) -> None:
    torch.set_num_threads(int(spec.get("threads", 2)))
    out = Path(spec["tmp"])
    timer = StepTimes()
    extra = (plain if spec["side"] == "plain" else emovox)(spec, out, timer)
    done = time.perf_counter()
    w = int(spec["warmup"])
    steps = np.diff(timer.ends[w - 1:])
    emit({"steps": len(timer.ends), "loop_s_per_step": float(np.mean(steps)), "step_s_median": float(np.median(steps)),
          "setup_s": timer.begin - T0, "warmup_s": timer.ends[w - 1] - timer.begin,
          "after_train_s": done - timer.ends[-1], "in_process_s": done - T0, "peak_rss_mb": peak_rss_mb(), **extra})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
