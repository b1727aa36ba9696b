"""``python -m benchmarks.run``: run the comparisons and rewrite ``benchmarks/RESULTS.md``.

Sections (``--only a,b``): whisper-training, whisper (inference, long audio, FLOPs on a real
Whisper model trained on RAVDESS), runtime (the light runtime's cold start and whole-process
throughput against the full install and ``pipeline()``), startup (the full install's ``predict RUN``
start-up against main before its cut, stage by stage), training, inference, long, flops, prepare, ray, conversation, cross-corpus;
and, only when named, compile and stress (stress tests, groups and abstention on RAVDESS;
``benchmarks.stress_bench``). Each section's result is
stored in ``benchmarks/_work/results/<section>.json`` with the load average during it; the report
is rebuilt from all stored sections.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import traceback

from benchmarks.common import Context, cpu_facts, mem_total_gb, save_result, versions
from benchmarks.loadmon import LoadMonitor

ORDER = ("whisper-training", "whisper", "runtime", "startup", "flops", "inference", "training", "long", "prepare", "ray", "conversation",
         "cross-corpus")
OPTIONAL = ("compile", "stress")  # run only when named in --only


def _module(name: str):
    from benchmarks import (conversation, cross_corpus, flops, inference, long_audio, prepare_bench, ray_bench,
                            runtime, stress_bench, training, whisper_infer, whisper_train)

    return {"whisper-training": whisper_train, "whisper": whisper_infer, "runtime": runtime, "flops": flops, "inference": inference, "training": training, "long": long_audio,
            "prepare": prepare_bench, "ray": ray_bench, "conversation": conversation, "cross-corpus": cross_corpus,
            "compile": _Compile, "stress": stress_bench, "startup": _Startup}[name]


class _Compile:
    @staticmethod
    def run(ctx: Context) -> dict:
        from benchmarks import training

        return training.run_compile(ctx)


class _Startup:
    @staticmethod
    def run(ctx: Context) -> dict:
        from benchmarks import runtime

        return runtime.run_startup(ctx)


def machine(ctx: Context) -> dict:
    return {"cpu": cpu_facts(), "versions": versions(), "mem_gb": mem_total_gb(), "threads": ctx.threads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help=f"comma-separated sections: {', '.join(ORDER)} (default: all), and {', '.join(OPTIONAL)}")
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer files, steps and repeats")
    ap.add_argument("--repeats", type=int, default=3, help="scale repeat counts (3 = as designed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", action="store_true",
                    help="also the wav2vec2 side studies (training levers and variants; inference threads, batching, "
                         "int8 choices), left out of the default run to keep it within 40 minutes")
    ap.add_argument("--no-report", action="store_true", help="store results but do not rewrite RESULTS.md")
    ap.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from the stored results, run nothing")
    args = ap.parse_args(argv)
    if args.report_only:
        from benchmarks import report

        print(f"wrote {report.write(machine(Context(quick=False, repeats=args.repeats, threads=args.threads, seed=args.seed)))}")
        return 0
    sections = [s.strip() for s in args.only.split(",") if s.strip()] or list(ORDER)
    unknown = [s for s in sections if s not in ORDER + OPTIONAL]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(ORDER)}")
    ctx = Context(quick=args.quick, repeats=args.repeats, threads=args.threads, seed=args.seed, extra=args.extra)
    import torch

    torch.set_num_threads(ctx.threads)
    mach = machine(ctx)
    ctx.log(f"load average now: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())} "
            f"({mach['cpu']['cores']} cores); sections: {', '.join(sections)}")
    t_all = time.perf_counter()
    failed: list[str] = []
    for name in [s for s in ORDER + OPTIONAL if s in sections]:
        ctx.log(f"== {name}")
        started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        t = time.perf_counter()
        try:
            with LoadMonitor() as mon:
                result = _module(name).run(ctx)
        except Exception:  # keep going: the other sections' numbers are still worth having
            failed.append(name)
            ctx.log(f"   {name} FAILED:\n{traceback.format_exc()}")
            continue
        save_result(name, {"result": result, "load": mon.summary(), "started": started, "quick": ctx.quick,
                           "seconds": time.perf_counter() - t})
        ctx.log(f"   {name} took {time.perf_counter() - t:.0f} s, load {mon.summary()}")
    if not args.no_report:
        from benchmarks import report

        path = report.write(mach)
        ctx.log(f"wrote {path} ({time.perf_counter() - t_all:.0f} s in all)")
    if failed:
        ctx.log(f"failed sections: {', '.join(failed)} (their previous results, if any, were kept)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
