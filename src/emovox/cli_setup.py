"""The ``emovox`` commands that set things up: the synthetic corpus, random and imported models."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .cli_common import csv_list, app


@app.command("demo-data")
def demo_data_cmd(
    out: Path = typer.Option(..., help="Folder to write the synthetic CREMA-D-shaped corpus into."),
    speakers: int = typer.Option(16, help="Number of synthetic actors."),
    seed: int = typer.Option(0, help="Random seed (same seed, same bytes)."),
    sentences: Optional[str] = typer.Option(None, help="Comma-separated CREMA-D sentence codes (default: all 12), "
                                            "e.g. DFA,IEO for a small corpus."),
) -> None:
    """Generate the built-in synthetic corpus (for the demo and tests only: not real speech)."""
    from .data.synthetic import make_demo_corpus

    kwargs = {"sentences": csv_list(sentences)} if sentences else {}
    files = make_demo_corpus(out=out, speakers=speakers, seed=seed, **kwargs)
    typer.echo(f"wrote {len(files)} synthetic clips to {out}")


@app.command("init-model")
def init_model_cmd(
    size: str = typer.Option("tiny", help="tiny, small or base (the wav2vec2-base architecture)."),
    scheme: str = typer.Option(..., help="Label scheme name or comma-separated labels."),
    out: Path = typer.Option(..., help="Folder for the randomly initialised model."),
    seed: int = typer.Option(0),
) -> None:
    """Save a randomly initialised model that loads like a hub checkpoint (offline)."""
    from .labels import get_scheme
    from .models.presets import init_model

    typer.echo(f"saved {size} model to {init_model(size=size, scheme=get_scheme(scheme), out=out, seed=seed)}")


@app.command("import-ct2")
def import_ct2_cmd(
    sources: List[str] = typer.Argument(..., help="CTranslate2 Whisper folder(s), installed package name(s) or a "
                                        "registry name (whisper-tiny.en, whisper-base); a model split over several "
                                        "packages is joined in part order."),
    out: Path = typer.Option(..., help="Folder for the transformers Whisper model (must not exist or be empty)."),
) -> None:
    """Convert a CTranslate2 Whisper model (faster-whisper's format) into a transformers model dir
    that `--model DIR` and `from_pretrained` load."""
    from .models.registry import import_sources

    typer.echo(f"wrote {import_sources(sources=sources, out=out, progress=sys.stderr.isatty())}")
