"""Weights by layer-path name (`stem_conv/kernel`) and the one copy by name: `copy_by_name`.

Every copy of weights from one network (or file) into another goes through `copy_by_name`, each caller stating
which differences it refuses: rebuilding a saved network for the current strategy (`trained.net_from_saved`),
a distillation student's starting weights (`distill.trainer`), an imported PyTorch checkpoint
(`import_checkpoint`) and KPTransfer (`transfer`, which sets the joint-dependent heads aside). Keras' own
`load_weights(skip_mismatch=True)` is not used anywhere: on `.weights.h5` it matches by order, not name.
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


# The differences between a source and the network it is copied into that `copy_by_name` can refuse.
MISSING = "missing"   # a weight of the network the source lacks (it would keep its fresh initialisation)
SHAPE = "shape"       # a weight the source holds in another shape
EXTRA = "extra"       # a weight of the source the network has no place for (another, larger network)
EVERY_DIFFERENCE = frozenset({MISSING, SHAPE, EXTRA})


class CopyRefused(ValueError):
    """`copy_by_name` refused: `difference` says why ("nothing" matched, or the first refused difference), `details`
    the differing weights without the source's name (every difference when nothing matched), `plan` what the copy
    would have done."""

    def __init__(self, message: str, difference: str, details: str, plan: CopyPlan):
        super().__init__(message)
        self.difference, self.details, self.plan = difference, details, plan


def copy_by_name(model, source: Mapping[str, np.ndarray], source_name: str, *, refuse, skip=None, may_lack=(),
                 apply: bool = True) -> CopyPlan:
    """Copy every weight of `source` into the weight of `model` of the same layer-path name and shape; the
    plan (what was copied, what differed) is returned.

    `refuse`: the differences that stop the copy (a subset of `EVERY_DIFFERENCE`, each caller stating its own):
    `MISSING` a weight of `model` that `source` lacks, `SHAPE` a weight of another shape, `EXTRA` a weight of
    `source` that `model` lacks. A copy where nothing matches is always refused. A refusal raises `CopyRefused`
    (a ValueError) naming `source_name` and the first differing weights, before anything is assigned.
    `skip(layer_name)`: layers of `model` left out of the copy and of the checks (their weights land in
    `plan.skipped`; source weights of those layer names are not extra). `may_lack`: layer-name prefixes whose
    absence from `source` is no difference (layers another source initialises).
    `apply=False` plans and checks only: the caller assigns with `plan.apply()` once its own checks pass.
    """
    unknown = set(refuse) - EVERY_DIFFERENCE
    if unknown:
        raise ValueError(f"copy_by_name refuse={sorted(unknown)}: expected some of {sorted(EVERY_DIFFERENCE)}")
    plan = plan_copy(model, source, skip)
    differences = {
        MISSING: [r[0] for r in plan.only_in_target if not r[0].startswith(tuple(may_lack))],
        SHAPE: [f"{name} {tuple(have)} not {tuple(want)}" for name, have, want in plan.shape_mismatched],
        EXTRA: [r[0] for r in plan.only_in_source if skip is None or not skip(r[0].split("/")[0])],
    }
    wording = {MISSING: "{n} of the network's weights missing", SHAPE: "{n} weights of another shape",
               EXTRA: "{n} weights the network has no place for"}

    def described(kinds) -> str:
        return "; ".join(wording[kind].format(n=len(differences[kind])) + " (" + ", ".join(differences[kind][:5])
                         + (", ..." if len(differences[kind]) > 5 else "") + ")" for kind in kinds)

    if not plan.copied:    # whatever the caller tolerates: the details name every difference
        details = described([kind for kind in (MISSING, SHAPE, EXTRA) if differences[kind]])
        raise CopyRefused(f"{source_name}: no weight of it matches the network's by name and shape (another "
                          f"architecture?): {details}", "nothing", details, plan)
    refused = [kind for kind in (MISSING, SHAPE, EXTRA) if kind in refuse and differences[kind]]
    if refused:
        details = described(refused)
        raise CopyRefused(f"{source_name}: does not match the network it is copied into: {details}", refused[0],
                          details, plan)
    if apply:
        plan.apply()
    return plan
