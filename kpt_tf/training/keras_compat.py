"""Every use of Keras' and TensorFlow's private API, in one place, checked against the pinned versions
(requirements.txt).

Keras 3.15's TensorFlow trainer fails under `tf.distribute.MultiWorkerMirroredStrategy` (keras-team/keras#20585)
in two places, both fixed here for the project's trainers only:

1. `fit` first calls `Trainer._maybe_symbolic_build`, which takes one batch from the distributed iterator and
   tries to turn its per-replica values into a tensor (`TypeError: ... PerReplica ... to a Tensor`). The
   project's trainers build network, metrics and optimizer before `fit` (resume needs the variables anyway),
   so there is nothing left to build: `BuiltBeforeFit` skips the call when everything is built and defers to
   Keras otherwise. Overriding this private method is unavoidable (no public switch turns it off).
2. `reduce_per_replica` reduces the train step's logs with `strategy.reduce("MEAN", v, axis=0)` under a
   multi-worker strategy, which refuses scalars. `per_replica_logs` gives each log value the shape [1] there:
   the mean over axis 0 and over replicas is then the scalar the callbacks expect (public API only).

`scale_loss_for_distribution` (the loss scaling Keras' own `compute_loss` applies under a strategy) has no
public name; it is re-exported from here. So are TF's `is_op_determinism_enabled` and `disable_op_determinism`:
public TF has only `tf.config.experimental.enable_op_determinism`, and `training.settings.run_settings` restores
the previous state after a run.

`run_functional` runs a functional model's graph with some layers' calls replaced (kpt_tf.models.folding: batch
norm folded into the convolution before it, for inference): Keras' own `Functional.call` does exactly this through
the private `_run_through_graph(inputs, operation_fn)`, which has no public equivalent that leaves the model's
layers untouched (calling them on new inputs would add inbound nodes to every layer of the trained network).

`tests/kpt_tf/training/test_distribute_and_launch.py::test_keras_private_api_used_by_the_shim_is_still_there` fails
loudly when an upgrade of Keras moves any of this.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.losses.loss import scale_loss_for_distribution  # noqa: F401  (re-exported, see above)
from tensorflow.python.framework.config import (  # noqa: F401  (re-exported, see above)
    disable_op_determinism,
    is_op_determinism_enabled,
)

from kpt_tf.training.distribute import is_multi_worker

CHECKED_KERAS = "3.15.1"


class BuiltBeforeFit:
    """Mixin for a `keras.Model` built (network, optimizer) before `fit`: skips Keras' symbolic build."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        optimizer = getattr(self, "optimizer", None)
        if self.built and optimizer is not None and optimizer.built:
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def per_replica_logs(logs: dict, strategy) -> dict:
    """The step's logs in the shape `fit`'s reduction across replicas accepts under `strategy`."""
    if not is_multi_worker(strategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def keras_version_checked() -> bool:
    return keras.__version__ == CHECKED_KERAS


def is_functional(net) -> bool:
    """Whether `run_functional` can run `net` (a functional model, not a Sequential or subclassed one)."""
    from keras.src.models.functional import Functional

    return isinstance(net, Functional)


def run_functional(net: keras.Model, inputs, replacement_for):
    """`net(inputs, training=False)` for a functional model, except that a layer for which `replacement_for(layer)`
    returns a callable is computed by that callable, given the layer's own call arguments."""
    from keras.src.models.functional import operation_fn, unpack_singleton

    def call_of(operation):
        return replacement_for(operation) or operation_fn(operation, training=False)

    return unpack_singleton(net._run_through_graph(net._standardize_inputs(inputs), operation_fn=call_of))
