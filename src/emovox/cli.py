"""The ``emovox`` command: each command parses its options and makes one library call."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import EmovoxError, InvalidCorpus

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speech emotion recognition: prepare, train, evaluate, predict, export.")


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _csv_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command("demo-data")
def demo_data_cmd(
    out: Path = typer.Option(..., help="Folder to write the synthetic CREMA-D-shaped corpus into."),
    speakers: int = typer.Option(16, help="Number of synthetic actors."),
    seed: int = typer.Option(0, help="Random seed (same seed, same bytes)."),
) -> None:
    """Generate the built-in synthetic corpus (for the demo and tests only: not real speech)."""
    from .demo_data import make_demo_corpus

    files = make_demo_corpus(out=out, speakers=speakers, seed=seed)
    typer.echo(f"wrote {len(files)} synthetic clips to {out}")


@app.command()
def prepare(
    corpus: str = typer.Option(..., help="crema-d, ravdess, csv or folders."),
    root: Path = typer.Option(..., help="Corpus folder (for csv: a CSV file or a folder of split CSVs)."),
    out: Path = typer.Option(..., help="Output folder for manifest.csv and the data report."),
    scheme: Optional[str] = typer.Option(None, help="Label scheme name or comma-separated labels."),
    seed: int = typer.Option(0, help="Seed for the splits."),
    test_speakers: Optional[str] = typer.Option(None, help="Comma-separated speakers pinned to test."),
    drop_invalid: bool = typer.Option(False, help="Keep the good files and list the bad ones in invalid.csv."),
    workers: Optional[int] = typer.Option(None, help="Parallel decoding processes (default: all cores)."),
) -> None:
    """Validate a corpus and write a manifest with speaker-independent splits and a data report."""
    from .prepare import prepare as run

    res = run(corpus=corpus, root=root, out=out, scheme=scheme, seed=seed, drop_invalid=drop_invalid,
              test_speakers=_csv_list(test_speakers), workers=workers, progress=sys.stderr.isatty())
    for path, reason in res.dropped:
        _say(f"dropped {path}: {reason}")
    if res.dropped:
        _say(f"dropped {len(res.dropped)} invalid file(s), listed in {out / 'invalid.csv'}")
    typer.echo(res.report.read_text())
    typer.echo(f"manifest: {res.manifest} ({res.rows} rows, scheme {res.scheme.name})")


@app.command("init-model")
def init_model_cmd(
    size: str = typer.Option("tiny", help="tiny, small or base (the wav2vec2-base architecture)."),
    scheme: str = typer.Option(..., help="Label scheme name or comma-separated labels."),
    out: Path = typer.Option(..., help="Folder for the randomly initialised model."),
    seed: int = typer.Option(0),
) -> None:
    """Save a randomly initialised model that loads like a hub checkpoint (offline)."""
    from .labels import get_scheme
    from .models import init_model

    typer.echo(f"saved {size} model to {init_model(size=size, scheme=get_scheme(scheme), out=out, seed=seed)}")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: user errors become one line each and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except InvalidCorpus as exc:
        for path, reason in exc.problems:
            _say(f"invalid: {path}: {reason}")
        _say(f"error: {exc}")
        return 2
    except EmovoxError as exc:
        _say(f"error: {exc}")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _say("aborted")
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
