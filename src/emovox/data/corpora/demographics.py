"""Who is speaking: the group columns corpora document (gender, age, language, ...), spelled one
way in every manifest so ``evaluate --by gender`` compares like with like across corpora.

Adapters fill what their corpus documents (RAVDESS: odd actors male; CREMA-D: its
``VideoDemographics.csv`` when the user has it; EMOVO: f/m speaker prefixes); CSV tables and
Hugging Face datasets pass such columns through under the names here.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import BadManifest

# manifest column -> column names corpora use for it (lower case)
GROUP_ALIASES: dict[str, tuple[str, ...]] = {
    "gender": ("gender", "sex"),
    "age": ("age",),
    "language": ("language", "lang", "locale"),
    "accent": ("accent", "dialect"),
    "race": ("race",),
    "ethnicity": ("ethnicity",),
}
_GENDER = {"f": "female", "female": "female", "w": "female", "woman": "female", "women": "female",
           "m": "male", "male": "male", "man": "male", "men": "male"}
CREMA_DEMOGRAPHICS = "VideoDemographics.csv"


def normalise_group(column: str, value: object) -> str:
    """A group value as manifests spell it: gender as ``female``/``male`` (f/F/Female/woman, m/...),
    other values stripped; unknown gender spellings are kept lower-cased, missing ones empty."""
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()
    if column == "gender":
        return _GENDER.get(text.lower(), text.lower())
    return text


def gender_from_prefix(speaker: str) -> str:
    """``female``/``male`` from a speaker id that starts with f or m (EMOVO's f1..m3), else ''."""
    return {"f": "female", "m": "male"}.get(speaker[:1].lower(), "")


def ravdess_gender(actor: str) -> str:
    """RAVDESS documents odd-numbered actors as male and even-numbered ones as female."""
    return "male" if int(actor) % 2 else "female"


def group_columns(columns: list[str]) -> dict[str, str]:
    """Manifest group column -> the given column holding it, for the columns found (first alias wins)."""
    lower = {c.lower().strip(): c for c in columns}
    found = {}
    for name, aliases in GROUP_ALIASES.items():
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is not None:
            found[name] = hit
    return found


def crema_demographics(root: Path) -> dict[str, dict[str, str]]:
    """CREMA-D's actor table (``VideoDemographics.csv``: ActorID, Age, Sex, Race, Ethnicity) from the
    corpus root or the folder above it (the release keeps it beside ``AudioWAV/``): actor id ->
    group columns; empty when the user does not have it.

    Raises:
        BadManifest: the table is there but has no ActorID column or cannot be read.
    """
    table = next((p for p in (root / CREMA_DEMOGRAPHICS, root.parent / CREMA_DEMOGRAPHICS) if p.is_file()), None)
    if table is None:
        return {}
    try:
        df = pd.read_csv(table, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise BadManifest(f"{table}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if "ActorID" not in df.columns:
        raise BadManifest(f"{table}: no ActorID column (found {', '.join(df.columns)})")
    cols = group_columns([c for c in df.columns if c != "ActorID"])
    return {str(r["ActorID"]).strip(): {k: normalise_group(k, r[c]) for k, c in cols.items()}
            for r in df.to_dict("records")}
