"""emovox: speech emotion recognition with wav2vec2-family encoders."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emovox")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

from .errors import BadAudio, BadConfig, BadLabel, BadManifest, BadModel, BadRunDir, EmovoxError  # noqa: E402
from .labels import LabelScheme, get_scheme  # noqa: E402

__all__ = [
    "__version__", "EmovoxError", "BadAudio", "BadConfig", "BadLabel", "BadManifest", "BadModel", "BadRunDir",
    "LabelScheme", "get_scheme",
]
