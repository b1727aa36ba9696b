"""``python -m emovox``: the ``emovox`` command (what ``torchrun -m emovox`` and ``accelerate launch -m emovox`` run)."""
import sys

from .cli import main

sys.exit(main())
