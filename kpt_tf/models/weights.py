"""Weights by layer-path name (`stem_conv/kernel`): the one copy-by-name primitive.

Used to rebuild a saved network for the current strategy (`net_from_saved`) and by KPTransfer. Keras'
own `load_weights(skip_mismatch=True)` is not used anywhere: on `.weights.h5` it matches by order, not name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Callable, Mapping

import numpy as np


def variables_by_name(model) -> dict:
    """Layer-path name -> variable, for every weight of `model` (trainable or not)."""
    return {v.path: v for v in model.weights}


def weights_by_name(model) -> dict[str, np.ndarray]:
    """Layer-path name -> value."""
    return {v.path: np.asarray(v.numpy()) for v in model.weights}


def weights_digest(model) -> str:
    """SHA-256 over every weight of `model` (names, shapes and float bytes, in the model's order): equal for
    bit-identical networks (e.g. the workers of one synchronous run)."""
    h = hashlib.sha256()
    for v in model.weights:
        value = np.ascontiguousarray(np.asarray(v.numpy()))
        h.update(f"{v.path}:{value.dtype}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def trainable_parameter_count(model) -> int:
    """Trainable weights only (BN moving mean/variance are non-trainable), like PyTorch's parameters()."""
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))


@dataclasses.dataclass
class CopyPlan:
    """What a copy by name would do: (variable, value) pairs, and what did not match (name, shapes...)."""

    assignments: list = dataclasses.field(default_factory=list)       # (variable, value)
    copied: list = dataclasses.field(default_factory=list)            # (name, params)
    shape_mismatched: list = dataclasses.field(default_factory=list)  # (name, source shape, target shape)
    only_in_target: list = dataclasses.field(default_factory=list)    # (name, params)
    only_in_source: list = dataclasses.field(default_factory=list)    # (name, params)
    skipped: list = dataclasses.field(default_factory=list)           # (name, params): excluded by `skip`

    def apply(self) -> None:
        for variable, value in self.assignments:
            variable.assign(value)


def plan_copy(model, source: Mapping[str, np.ndarray], skip: Callable[[str], bool] | None = None) -> CopyPlan:
    """Plan copying every weight of `source` whose layer-path name and shape match a weight of `model`.

    `skip(layer_name)` excludes layers (e.g. KPTransfer's joint-dependent heads) from the plain copy; they
    land in `skipped`. Nothing is assigned until `apply()`.
    """
    plan = CopyPlan()
    for layer in model.layers:
        for v in layer.weights:
            name, shape = v.path, tuple(v.shape)
            params = int(np.prod(shape))
            if skip is not None and skip(layer.name):
                plan.skipped.append((name, params))
                continue
            value = source.get(name)
            if value is None:
                plan.only_in_target.append((name, params))
            elif tuple(np.shape(value)) != shape:
                plan.shape_mismatched.append((name, tuple(np.shape(value)), shape))
            else:
                plan.assignments.append((v, value))
                plan.copied.append((name, params))
    target = {v.path for v in model.weights}
    plan.only_in_source = sorted((n, int(np.prod(np.shape(w)))) for n, w in source.items()
                                 if n not in target and not n.startswith(("seed_generator", "optimizer")))
    return plan
