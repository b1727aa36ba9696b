"""What every ``emovox`` command module shares: the Typer app and the small option helpers."""
from __future__ import annotations

from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speech emotion recognition: prepare, train, evaluate, predict, export.")


def say(msg: str) -> None:
    typer.echo(msg, err=True)


def split_models(items: List[str], what: str) -> tuple[list[str], list[str]]:
    """Leading items that name models (run dirs, save_pretrained folders, hub ids), then the rest."""
    from .models.source import looks_like_model

    n = 0
    while n < len(items) and looks_like_model(items[n]):
        n += 1
    if n == 0 or n == len(items):
        raise typer.BadParameter(f"give one or more models first (emovox run dirs, save_pretrained folders with "
                                 f"config.json, or hub ids), then {what}")
    return list(items[:n]), list(items[n:])


def csv_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
