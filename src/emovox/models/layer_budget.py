"""A layer budget: an encoder that runs only its first ``k`` transformer layers.

``model.layer_budget: k`` loads the encoder with ``k`` layers (``num_hidden_layers = k`` in its
config, so only the first ``k`` layers' weights load), and the head reads the hidden states of
those layers and the encoder output on top of layer ``k`` (the family's final layer norm applied
to it where the family has one: Whisper, pre-norm wav2vec2). Features, head, run dir,
``predict``, ``serve``, ``evaluate`` and ``export`` then all run ``k`` layers with no code of
their own: the saved config and weights are those of a ``k``-layer encoder, so the layers above
are neither stored nor executed (in torch and in the ONNX graph). The scores equal those of the
whole encoder with a head reading layers 0..k (a test checks it).

Choosing ``k`` is cheap: the feature cache holds every layer's statistics, so a probe can be
fitted per budget on the cached features (:func:`budget_features`;
``emovox.training.layer_budget.choose_budget``) and the smallest ``k`` within a stated accuracy
cost of the best taken.
"""
from __future__ import annotations

from typing import Any

from ..errors import BadConfig


def check_budget(budget: Any) -> int | None:
    """``model.layer_budget`` as a whole number >= 1, or None (every layer).

    Raises:
        BadConfig: anything else.
    """
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise BadConfig(f"model.layer_budget={budget!r} must be a whole number of encoder layers >= 1 "
                        "(or null: every layer)")
    return budget


def budget_overrides(budget: int | None, n_layers: int | None = None) -> dict[str, int]:
    """Config overrides that load an encoder with ``budget`` layers (none when it has no more)."""
    budget = check_budget(budget)
    if budget is None or (n_layers is not None and budget >= n_layers):
        return {}
    return {"num_hidden_layers": budget}  # Whisper maps it to encoder_layers


def keep_layers_state(state: dict, budget: int | None) -> dict:
    """A backbone state dict without the weights of layers ``budget`` and above."""
    import re

    if budget is None:
        return state
    pattern = re.compile(r"(?:^|\.)layers\.(\d+)\.")
    return {k: v for k, v in state.items() if not ((m := pattern.search(k)) and int(m.group(1)) >= budget)}


def executed_layers(model: Any, run) -> int:
    """How many transformer layers of ``model``'s encoder execute while ``run()`` runs."""
    from .tuning import encoder_layers

    calls = []
    hooks = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in encoder_layers(model)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return len(calls)


def budget_features(stats, budget: int):
    """What a head under a budget of ``budget`` layers reads, from the whole encoder's cached
    utterance statistics [N, 2, L + 2, H] (hidden states 0..L, then the encoder output): hidden
    states 0..budget, with state ``budget`` standing in for the output as well. Exact for post-norm
    encoders (wav2vec2-base, HuBERT-base); where the family puts a final layer norm on the output
    (Whisper), the truncated encoder's output is that norm of state ``budget``, which the cache
    does not hold, so this is the selection proxy (the chosen budget is then trained for real)."""
    import numpy as np

    x = stats[:, :, : budget + 1]
    last = x[:, :, -1:]
    cat = np.concatenate if isinstance(x, np.ndarray) else __import__("torch").cat
    return cat([x, last], **({"axis": 2} if isinstance(x, np.ndarray) else {"dim": 2}))
