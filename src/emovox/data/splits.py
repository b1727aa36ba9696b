"""Speaker-independent splits: holdout, group k-fold, and the leakage check."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import BadManifest

DEFAULT_FRACTIONS = (0.68, 0.11, 0.21)  # the reference recipe's 2486/410/738
SPLIT_NAMES = ("train", "validation", "test")


def speaker_holdout(
    df: pd.DataFrame,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    test_speakers: Sequence[str] | None = None,
) -> pd.Series:
    """Assign every row a split so that no speaker appears in two splits.

    Speakers are placed one at a time (largest first, ties in seeded random order) into the split
    that best keeps both the split sizes and each split's label distribution on target, so labels
    are stratified as far as the speakers allow. ``test_speakers`` pins the test set.

    Raises:
        BadManifest: fewer than 3 speakers, bad fractions, or pinned speakers that do not exist.
    """
    fr = _check_fractions(fractions)
    speakers = df["speaker"].astype(str)
    names = sorted(speakers.unique())
    counts = pd.crosstab(speakers, df["label"]).reindex(names)
    split_of: dict[str, int] = {}
    if test_speakers:
        unknown = sorted(set(test_speakers) - set(names))
        if unknown:
            raise BadManifest(f"--test-speakers {', '.join(unknown)} not in the corpus; speakers: {', '.join(names)}")
        split_of.update({s: 2 for s in test_speakers})
        rest = fr[:2] / fr[:2].sum()
        fr = np.array([rest[0], rest[1], 0.0])
    free = [s for s in names if s not in split_of]
    needed = int((fr > 0).sum())
    if len(free) < needed:
        raise BadManifest(f"{len(names)} speaker(s) cannot fill {needed + (1 if test_speakers else 0)} "
                          "speaker-disjoint splits; add speakers or pass explicit splits in a CSV")
    rng = np.random.default_rng(seed)
    order = sorted(free, key=lambda s: (-counts.loc[s].sum(), rng.random()))
    _seed_each_split(order, split_of, fr)
    total = counts.sum(axis=0).to_numpy(float)
    acc = np.zeros((3, counts.shape[1]))
    for s, k in split_of.items():
        acc[k] += counts.loc[s].to_numpy(float)
    for s in order:
        if s in split_of:
            continue
        row = counts.loc[s].to_numpy(float)
        costs = [_cost(acc, row, k, fr, total) if fr[k] > 0 else np.inf for k in range(3)]
        k = int(np.argmin(costs))
        split_of[s] = k
        acc[k] += row
    return speakers.map(lambda s: SPLIT_NAMES[split_of[s]])


def _seed_each_split(order: list[str], split_of: dict[str, int], fr: np.ndarray) -> None:
    """Give each non-empty split one speaker first, smallest target first, so none ends up empty."""
    targets = [k for k in np.argsort(fr) if fr[k] > 0]
    for k, s in zip(targets, reversed(order)):
        split_of[s] = int(k)


def _cost(acc: np.ndarray, row: np.ndarray, k: int, fr: np.ndarray, total: np.ndarray) -> float:
    trial = acc.copy()
    trial[k] += row
    n = trial.sum(axis=1)
    size_err = ((n / total.sum() - fr) ** 2).sum()
    dist = trial / np.maximum(n[:, None], 1)
    label_err = (((dist - total / total.sum()) ** 2).sum(axis=1) * fr).sum()
    return float(size_err + label_err)


def random_holdout(df: pd.DataFrame, *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> pd.Series:
    """Stratified random splits for corpora without speaker ids (optimistic: speakers may leak)."""
    from sklearn.model_selection import train_test_split

    fr = _check_fractions(fractions)
    idx = np.arange(len(df))
    labels = df["label"].to_numpy()
    strat = labels if pd.Series(labels).value_counts().min() >= 3 else None
    rest, test = train_test_split(idx, test_size=fr[2], random_state=seed, stratify=strat)
    strat_rest = labels[rest] if strat is not None else None
    train, val = train_test_split(rest, test_size=fr[1] / (fr[0] + fr[1]), random_state=seed, stratify=strat_rest)
    out = np.empty(len(df), dtype=object)
    out[train], out[val], out[test] = "train", "validation", "test"
    return pd.Series(out, index=df.index)


def speaker_folds(df: pd.DataFrame, *, folds: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Speaker-grouped, label-stratified K-fold: (train row indices, test row indices) per fold.

    Raises:
        BadManifest: fewer speakers than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = df["speaker"].astype(str).to_numpy()
    if len(set(groups)) < folds or folds < 2:
        raise BadManifest(f"{folds}-fold cross-validation needs at least {max(folds, 2)} speakers; "
                          f"the manifest has {len(set(groups))}")
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    yield from cv.split(np.zeros(len(df)), df["label"].to_numpy(), groups)


def leaked_speakers(df: pd.DataFrame) -> dict[str, list[str]]:
    """Speakers found in more than one split (empty when the splits are speaker-independent)."""
    known = df[df["speaker"].astype(str) != ""]
    per = known.groupby("speaker")["split"].unique()
    return {str(s): sorted(v) for s, v in per.items() if len(v) > 1}


def held_for_confirmation(df: pd.DataFrame, where: object) -> pd.Series:
    """The rows ``--confirm`` holds out of every fold: the test split, whose speakers must appear in
    no other split (else the folds would still see them).

    Raises:
        BadManifest: no test rows, only test rows, or test speakers also in train or validation.
    """
    held = df["split"] == "test"
    if not held.any() or held.all():
        raise BadManifest(f"{where}: --confirm holds the test split's speakers out of the folds and scores them "
                          f"once at the end; the manifest has {int(held.sum())} test row(s) of {len(df)}")
    leaks = sorted(s for s, splits in leaked_speakers(df).items() if "test" in splits)
    if leaks:
        raise BadManifest(f"{where}: --confirm needs test speakers that no other split has; {len(leaks)} "
                          f"also train or validate, e.g. {', '.join(leaks[:5])} (prepare with --test-speakers)")
    return held


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0 or fr[0] <= 0:
        raise BadManifest(f"split fractions must be three non-negative numbers (train>0), got {list(fractions)}")
    return fr / fr.sum()


# train:validation inside the non-test speakers, as in the default holdout (0.68 : 0.11)
TRAIN_VALIDATION = (DEFAULT_FRACTIONS[0], DEFAULT_FRACTIONS[1], 0.0)


def fold_manifests(df: pd.DataFrame, *, folds: int | Sequence[Sequence[str]], seed: int = 0) -> Iterator[pd.DataFrame]:
    """One manifest per fold: test = the fold's speakers, train/validation = the other speakers.

    ``folds``: K seeded speaker-grouped folds, or the test speakers of each fold (as the manifest
    spells them: ``data.fold_plan.resolve_folds``). Every row of ``df`` is used whatever its
    ``split`` column says. The validation speakers are a speaker-disjoint, label-stratified slice of
    the non-test speakers (``speaker_holdout``).

    Raises:
        BadManifest: rows without a speaker, fewer speakers than folds, or too few speakers left
            to fill both train and validation.
    """
    df = df.reset_index(drop=True)
    missing = df["speaker"].astype(str).str.strip() == ""
    if missing.any():
        raise BadManifest(f"cross-validation needs a speaker for every row; {int(missing.sum())} row(s) "
                          f"have none, e.g. {df.loc[missing, 'path'].iloc[0]}")
    speakers = df["speaker"].astype(str)
    tests = (idx for _, idx in speaker_folds(df, folds=folds, seed=seed)) if isinstance(folds, int) else \
        (np.flatnonzero(speakers.isin(list(group)).to_numpy()) for group in folds)
    for test_idx in tests:
        fold = df.copy()
        rest = fold.drop(index=test_idx)
        fold.loc[rest.index, "split"] = speaker_holdout(rest, fractions=TRAIN_VALIDATION, seed=seed).to_numpy()
        fold.loc[test_idx, "split"] = "test"
        yield fold
