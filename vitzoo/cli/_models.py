"""The one way a command gets the model it runs on: a registry name or a weight file, loaded (or built with seeded
random weights), with the source fall-through reported as one line, and its preprocessing resolved."""

from __future__ import annotations

import warnings
from typing import Any

from vitzoo.cli._output import warn


def load_model(
    name: str,
    *,
    img_size: int | None = None,
    crop_pct: float | None = None,
    num_classes: int | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    random_init: bool = False,
    batch: int = 1,
) -> tuple[Any, Any, bool]:
    """(model in eval mode, its preprocessing with ``--img-size``/``--crop-pct`` applied, whether its head is zero).

    The weights are checked to fit in memory before they are built or loaded, and then a forward pass of ``batch``
    images (``vitzoo.zoo.lookup.check_memory``): a huge ``--img-size`` is one line, not an out-of-memory crash.

    ``random_init``: the architecture of ``name`` with random weights, the same on every run and on every rank of a
    launch (seed 0). Otherwise ``vitzoo.load``; a source that failed before the one used is one warning line.
    """
    import torch

    import vitzoo
    from vitzoo.measure.device import resolve_device
    from vitzoo.weights.loading import ZeroHeadWarning
    from vitzoo.weights.sources import SourceFallbackWarning
    from vitzoo.zoo.lookup import check_memory
    from vitzoo.zoo.preprocess import resolve_preprocess

    resolve_device(device)  # also checked by --device; library callers get the same one-line error
    if random_init:
        torch.manual_seed(0)
        model = vitzoo.create(name, img_size=img_size, num_classes=num_classes).to(device).eval()
        check_memory(model.config, model.name, copies=0, batch=batch)
        return model, resolve_preprocess(model, img_size=img_size, crop_pct=crop_pct), False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZeroHeadWarning)
        model = vitzoo.load(name, img_size=img_size, num_classes=num_classes, device=device, dtype=dtype)
    check_memory(model.config, model.name, copies=0, batch=batch)
    zeroed = any(issubclass(w.category, ZeroHeadWarning) for w in caught)
    for w in caught:  # which source was used when the first failed: one line, not a Python warning
        if issubclass(w.category, SourceFallbackWarning):
            warn(str(w.message))
    return model, resolve_preprocess(model, img_size=img_size, crop_pct=crop_pct), zeroed
