"""Distance to the limit: FLOPs of wav2vec2-base counted with ``FlopCounterMode``, the CPU's fp32
peak (nominal and a measured SGEMM), and where inference time goes (torch and onnxruntime
profiles)."""
from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import SAMPLE_RATE, Context, fmt, table

COUNT_SECONDS = (1.0, 4.0, 10.0)


@dataclass
class FlopModel:
    """FLOPs of one forward pass as ``c0 + c1*s + c2*s^2`` for a clip of ``s`` seconds (the
    quadratic term is attention), fitted to exact counts at three lengths."""

    size: str
    coeffs: tuple[float, float, float]
    counts: dict[str, float]
    split_per_s: dict[str, float]  # GFLOP per audio second by part, at 4 s

    def flops(self, seconds: float) -> float:
        c0, c1, c2 = self.coeffs
        return c0 + c1 * seconds + c2 * seconds ** 2

    @property
    def gflops_per_audio_s(self) -> float:
        """At the 4 s clips the throughput benchmarks mostly use."""
        return self.flops(4.0) / 4.0 / 1e9

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FlopModel":
        return cls(d["size"], tuple(d["coeffs"]), d["counts"], d["split_per_s"])


_CACHE: dict[str, FlopModel] = {}


def flop_model(size: str = "base") -> FlopModel:
    """Count FLOPs (2 per multiply-add; convolutions, matmuls and attention) at 1, 4 and 10 s."""
    if size in _CACHE:
        return _CACHE[size]
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForAudioClassification

    from benchmarks import fixtures

    # eager attention: FlopCounterMode does not count CPU scaled_dot_product_attention
    model = AutoModelForAudioClassification.from_pretrained(fixtures.random_run(size), attn_implementation="eager").eval()
    counts, split = {}, {}
    for s in COUNT_SECONDS:
        x = torch.randn(1, int(s * SAMPLE_RATE))
        with torch.no_grad(), FlopCounterMode(display=False, depth=None) as fc:
            model(x)
        counts[str(s)] = float(fc.get_total_flops())
        if s == 4.0:
            by_module = fc.get_flop_counts()
            top = "Wav2Vec2ForSequenceClassification.wav2vec2"
            layers = [k for k in by_module if k.startswith(f"{top}.encoder.layers.") and k.count(".") == 4]
            parts = {"conv feature encoder": [f"{top}.feature_extractor"], "transformer layers": layers,
                     "positional conv": [f"{top}.encoder.pos_conv_embed"],
                     "projection + head": [f"{top}.feature_projection", "Wav2Vec2ForSequenceClassification.projector",
                                           "Wav2Vec2ForSequenceClassification.classifier"]}
            for label, mods in parts.items():
                split[label] = sum(sum(by_module.get(m, {}).values()) for m in mods) / s / 1e9
    xs = np.array(COUNT_SECONDS)
    coeffs = np.linalg.solve(np.vander(xs, 3, increasing=True), np.array([counts[str(s)] for s in COUNT_SECONDS]))
    fm = FlopModel(size, tuple(float(c) for c in coeffs), counts, split)
    _CACHE[size] = fm
    return fm


def sgemm_gflops(threads: int, n: int = 2048, reps: int = 8) -> dict:
    """A large fp32 matrix multiply: the practical ceiling of this CPU (best and median of reps)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t)
    flop = 2 * n ** 3
    return {"best": flop / min(ts) / 1e9, "median": flop / float(np.median(ts)) / 1e9}


def torch_profile(threads: int, seconds: float = 4.0, top: int = 12) -> list[dict]:
    """Self CPU time by operator for the base model's eager forward pass on one clip."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForAudioClassification

    from benchmarks import fixtures

    torch.set_num_threads(threads)
    model = AutoModelForAudioClassification.from_pretrained(fixtures.random_run("base")).eval()
    x = torch.randn(1, int(seconds * SAMPLE_RATE))
    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                model(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "ms_per_pass": e.self_cpu_time_total / 2 / 1000,
             "calls_per_pass": e.count // 2} for e in events[:top]]


def ort_profile(onnx_dir: Path, threads: int, seconds: float = 4.0, top: int = 10) -> list[dict]:
    """Time by ONNX operator type for one exported model (onnxruntime's own profiler)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(onnx_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        feed = {"input_values": np.random.default_rng(0).standard_normal((1, int(seconds * SAMPLE_RATE))).astype(np.float32)}
        if any(i.name == "attention_mask" for i in sess.get_inputs()):
            feed["attention_mask"] = np.ones_like(feed["input_values"], dtype=np.int64)
        for _ in range(3):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_type: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            by_type[e.get("args", {}).get("op_name", "?")] += e["dur"]
    total = sum(by_type.values())
    return [{"op": k, "share": v / total, "ms_per_pass": v / 3 / 1000}
            for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:top]]


def run(ctx: Context) -> dict:
    from benchmarks import fixtures

    fm = flop_model("base")
    small = flop_model("small")
    gemm = {t: sgemm_gflops(t) for t in (1, ctx.threads)}
    run_dir = fixtures.random_run("base")
    fp32, int8 = fixtures.exported(run_dir, int8=False, log=ctx.log), fixtures.exported(run_dir, int8=True, log=ctx.log)
    int8_enc = fixtures.exported(run_dir, int8=True, encoder=True, log=ctx.log)
    return {"base": fm.to_dict(), "small": small.to_dict(), "sgemm": gemm,
            "torch_profile": torch_profile(ctx.threads), "ort_fp32_profile": ort_profile(fp32, ctx.threads),
            "ort_int8_profile": ort_profile(int8, ctx.threads),
            "ort_int8_encoder_profile": ort_profile(int8_enc, ctx.threads)}


def render(res: dict, machine: dict, inference: dict | None) -> str:
    cpu = machine["cpu"]
    fm = FlopModel.from_dict(res["base"])
    sm = FlopModel.from_dict(res["small"])
    out = ["## Distance to the limit", ""]
    out.append(f"FLOPs counted with `torch.utils.flop_counter.FlopCounterMode` (2 FLOP per multiply-add; "
               f"convolutions, matmuls, attention — norms and activations are not counted), base preset:")
    rows = [[f"{s} s", fmt(c / 1e9, 1), fmt(c / float(s) / 1e9, 2)] for s, c in res["base"]["counts"].items()]
    out += ["", table(["clip", "GFLOP", "GFLOP per audio second"], rows), ""]
    out.append("Per audio second at 4 s: " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in fm.split_per_s.items())
               + f" GFLOP (total {fmt(fm.gflops_per_audio_s, 2)}; the issue's estimate: 14 = 4.8 conv + 8.6 "
               f"transformer + 0.4 positional conv). `small`: {fmt(sm.gflops_per_audio_s, 2)} GFLOP per audio second.")
    g = res["sgemm"]
    out += ["", f"fp32 peak: {cpu['cores']} cores × {cpu['mhz'] / 1000:.3f} GHz (nominal, /proc/cpuinfo) × "
            f"{cpu['flop_per_cycle_per_core']} FLOP/cycle ({cpu['peak_assumption']}) = **{fmt(cpu['peak_gflops'], 1)} "
            f"GFLOP/s**. Measured 2048² SGEMM (torch): " + ", ".join(
                f"{t} thread(s) best {fmt(v['best'], 0)} / median {fmt(v['median'], 0)} GFLOP/s" for t, v in g.items())
            + ". (An SGEMM above the nominal peak means the cores boost above the nominal clock.)"]
    # practical ceiling: the best single-thread SGEMM times the cores (the 2-thread SGEMM suffers most from load)
    sgemm_ceiling = max(g["1"]["best"] * cpu["cores"] if "1" in g else 0, max(x["best"] for x in g.values()))
    out.append(f"Practical fp32 ceiling used below: {fmt(sgemm_ceiling, 0)} GFLOP/s (best 1-thread SGEMM × {cpu['cores']} cores).")
    if inference:
        rows = []
        for key, r in inference["throughput"].items():
            if not key.startswith("base|") or key.endswith("|export"):
                continue
            for v, m in r["variants"].items():
                gf = r.get("gflop_per_audio_s", fm.gflops_per_audio_s) * m["audio_per_s"]
                rows.append([key.split("|")[1], v, fmt(m["audio_per_s"]), fmt(gf, 0), f"{100 * gf / cpu['peak_gflops']:.0f}%",
                             f"{100 * gf / sgemm_ceiling:.0f}%"])
        out += ["", "Achieved (base, from the inference medians; int8 rows count the same fp32-equivalent FLOPs):", "",
                table(["clips", "path", "audio-s/s", "GFLOP/s", "% nominal fp32 peak", "% practical ceiling"], rows)]
    for title, key in (("torch eager forward, base, one 4 s clip", "torch_profile"),
                       ("onnxruntime fp32, base, one 4 s clip", "ort_fp32_profile"),
                       ("onnxruntime int8, base, one 4 s clip", "ort_int8_profile"),
                       ("onnxruntime int8 `--int8-encoder`, base, one 4 s clip", "ort_int8_encoder_profile")):
        if key not in res:
            continue
        rows = [[f"`{e['op']}`", f"{100 * e['share']:.1f}%", fmt(e["ms_per_pass"], 1)] for e in res[key]]
        out += ["", f"Where time goes — {title} (top operators by self time):", "",
                table(["operator", "share", "ms per pass"], rows)]
    return "\n".join(out)
