"""The plain way as one command, for whole-process timings beside ``emovox predict``:
``python -m benchmarks.pipeline_cli RUN THREADS OUT FILE...`` calls
``transformers.pipeline("audio-classification", model=RUN)`` once per file (read with soundfile: no
ffmpeg here) and writes one JSON line per file (path, top label) to OUT."""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import soundfile as sf
    import torch
    from transformers import pipeline

    run, threads, out, *files = argv
    torch.set_num_threads(int(threads))
    pipe = pipeline("audio-classification", model=run, device=-1)
    with open(out, "w") as f:
        for path in files:
            wave, sr = sf.read(path, dtype="float32", always_2d=True)
            top = pipe({"raw": wave.mean(axis=1), "sampling_rate": sr}, top_k=1)[0]
            f.write(json.dumps({"path": path, "label": top["label"]}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
