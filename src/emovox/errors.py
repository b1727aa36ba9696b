"""Errors that users can fix. The CLI prints each as one line and exits with code 2."""
from __future__ import annotations


class EmovoxError(Exception):
    """Base of every user-facing error: the message names the value, the file and what is valid."""

    kind = "error"


class BadAudio(EmovoxError):
    """An audio file cannot be used (unreadable, empty, silent, NaN, ...)."""

    kind = "bad audio"


class BadLabel(EmovoxError):
    """A label, emotion or intensity code is not in the scheme."""

    kind = "bad label"


class BadManifest(EmovoxError):
    """A manifest or corpus is malformed or has invalid rows."""

    kind = "bad manifest"


class BadConfig(EmovoxError):
    """A configuration key or value is wrong."""

    kind = "bad config"


class BadRunDir(EmovoxError):
    """A run directory is missing files or is not an emovox run."""

    kind = "bad run dir"


class BadModel(EmovoxError):
    """Model weights that cannot be read or converted (a truncated or foreign model file)."""

    kind = "bad model"


class InvalidCorpus(BadManifest):
    """`prepare` found invalid files; carries all of them so they can be listed at once."""

    kind = "invalid corpus"

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} invalid file(s); fix them or rerun with --drop-invalid to keep the good ones"
        )


class HubError(EmovoxError):
    """The model hub refused a request or cannot be reached (offline, no token, no permission)."""

    kind = "hub"


def user_error_line(exc: BaseException) -> str:
    """The one line the CLI prints for a user error: an emovox error's message, or for an OSError
    that names a path (an ``--out`` that is a file, a folder without write permission) the path and
    the reason. Anything else is not the user's to fix and is raised again."""
    if isinstance(exc, EmovoxError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        hint = " (a folder is needed there)" if isinstance(exc, FileExistsError) else ""
        return f"{exc.filename}: {exc.strerror or exc}{hint}"
    raise exc
