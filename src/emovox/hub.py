"""``push``: a run dir to the Hugging Face Hub as a model repository, card first.

Only where a hub is reachable: everything up to the upload (the card rewritten for the repo id and
validated, the files chosen) happens locally and is tested; the upload itself is one
``HfApi.upload_folder`` call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import BadConfig, HubError
from .modelcard import load_card, write_model_card
from .rundir import open_run, read_meta, update_meta

# Trainer checkpoints hold optimizer states (several times the model): the final model is the root.
UPLOAD_IGNORE = ("checkpoint-*", "checkpoint-*/*", "checkpoint-*/**", "*.lock", ".cache/**")


def push(*, run: str | Path, repo_id: str, private: bool = False, token: str | None = None,
         datasets: Sequence[str] = (), commit_message: str | None = None) -> str:
    """Upload a run dir (model, feature extractor, ``emovox.json``, config, curves, TensorBoard
    logs and the model card; not the checkpoints) to the model repo ``repo_id``, created if missing.

    The card is rewritten first, so its usage examples name ``repo_id`` and ``datasets`` (hub
    dataset ids the run was trained on) enter its metadata, and it is validated before anything
    is sent.

    Returns:
        The URL of the commit on the Hub.

    Raises:
        BadRunDir: not a run dir, or a card that does not validate. BadConfig: ``repo_id`` or a
        dataset id is not a valid repo id. HubError: the Hub cannot be reached or refused.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    rd = open_run(run)
    for rid in (repo_id, *datasets):
        try:
            validate_repo_id(rid)
        except HFValidationError as exc:
            raise BadConfig(f"{rid!r} is not a hub repo id (expected owner/name): {str(exc).splitlines()[0]}") from None
    changes = {"hub_repo": repo_id, **({"hub_datasets": list(datasets)} if datasets else {})}
    update_meta(rd, **changes)
    write_model_card(rd.root)
    load_card(rd.root)
    api = HfApi(token=token)
    message = commit_message or f"emovox run {rd.root.resolve().name} (step {read_meta(rd).get('global_step', '?')})"
    try:
        api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(rd.root), repo_id=repo_id, repo_type="model",
                                 commit_message=message, ignore_patterns=list(UPLOAD_IGNORE))
    except Exception as exc:  # HTTP errors, offline mode, no token, network: one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HubError(f"push to {repo_id} failed ({type(exc).__name__}: {first})") from None
    return str(getattr(info, "commit_url", None) or info)


def files_to_upload(run: str | Path) -> list[str]:
    """The run dir's files that :func:`push` sends (relative paths), as ``upload_folder`` filters them."""
    from huggingface_hub.utils import filter_repo_objects

    root = open_run(run).root
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=list(UPLOAD_IGNORE)))
