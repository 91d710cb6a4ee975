"""Trained networks from files: the one loader of a trained model (`load_trained`: an exported SavedModel, a
training workdir or a `.keras` file), the one reader of a file's weights (`read_weights`), and rebuilding a saved
network for the current strategy (`net_from_saved`). Where the files are and what they are called is
`kpt_tf.workdir`'s; this module reads them.

A file from elsewhere never runs code here:
- a `.keras` file loads only through `load_keras`: Keras safe mode, and a file whose config holds Python code (a
  Lambda layer) is refused before Keras sees it;
- a SavedModel's weights are read from its checkpoint alone (`read_savedmodel_variables`): its graph is never
  loaded or run. Only `load_trained` loads a SavedModel's graph, to run the network it is (a teacher, evaluation).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kpt_tf import workdir as wd


@dataclasses.dataclass
class TrainedModel:
    """A trained network from a workdir, a `.keras` file or an exported SavedModel, behind one interface."""

    path: Path
    net: object = None          # keras.Model (workdir, .keras), else None
    savedmodel: object = None   # the loaded SavedModel, else None
    config: object = None       # the training config when known (workdir, .keras beside its config.json)
    metadata: wd.ExportMetadata | None = None

    @property
    def kind(self) -> str:
        return "SavedModel" if self.savedmodel is not None else ".keras model"

    @property
    def joints(self):
        """The JointSubset of the network's heads, or None when nothing records it: an export's, in the layout it
        records; a training config's `joints` (kpt_tf.training.loop saves them with their layout's prefix unless
        they are mpii16's)."""
        from kpt_tf.joints import JointSubset

        if self.metadata is not None:
            return self.metadata.joint_subset()
        if self.config is not None:
            return JointSubset.parse(self.config.joints)
        return None

    def codec(self):
        if self.metadata is not None:
            return self.metadata.codec()
        if self.config is None:
            raise ValueError(f"{self.path}: no config.json beside it, so its codec is unknown")
        from kpt_tf.models import codec_from_config

        return codec_from_config(self.config)

    def heatmaps_fn(self, flip_test: bool = True, flip_shift: bool = False):
        """crops float32 [N, S, S, 3] -> final heatmaps. A SavedModel has its flip test fixed at export."""
        if self.savedmodel is not None:
            # A bound endpoint alone would let the SavedModel (and its variables) be garbage-collected.
            return lambda crops, _model=self.savedmodel: _model.heatmaps(crops)
        from kpt_tf.inference import net_heatmaps_fn

        return net_heatmaps_fn(self.net, self.joints, flip_test, flip_shift)

    def weights(self) -> dict:
        """Layer-path name ("stem_conv/kernel") -> numpy value (a SavedModel's from its checkpoint)."""
        if self.savedmodel is not None:
            return read_savedmodel_variables(self.path)
        from kpt_tf.models.weights import weights_by_name

        return weights_by_name(self.net)


def load_trained(path, which: str = "best", config=None) -> TrainedModel:
    """A trained network from an exported SavedModel, a training workdir (its `which` model) or a `.keras` file.

    Raises FileNotFoundError / ValueError naming the path when it is none of those.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: does not exist")
    if wd.is_savedmodel(path):
        import tensorflow as tf

        metadata = wd.ExportMetadata.read(path)
        return TrainedModel(path=path, savedmodel=tf.saved_model.load(str(path)), metadata=metadata)
    if path.is_dir():
        if which not in wd.MODELS:
            raise ValueError(f"which={which!r}: expected one of {sorted(wd.MODELS)}")
        config = config or wd.load_config(path)
        path = path / wd.MODELS[which]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no trained model ({wd.MODELS[which]}) in the workdir; train first")
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"{path}: not a SavedModel, a training workdir or a .keras file")
    if config is None and (path.parent / wd.CONFIG).is_file():
        config = wd.load_config(path.parent)
    return TrainedModel(path=path, net=load_keras(path), config=config)


# --- weights of a file ----------------------------------------------------------------------------------

@dataclasses.dataclass
class StoredWeights:
    """The weights a file holds, by layer-path name, and the joints of its heads when it records them."""

    weights: dict            # "layer/weight" -> numpy value
    joints: object           # JointSubset | None
    description: str         # "SavedModel PATH" / ".keras model PATH": names the file in refusals


def read_weights(path, which: str = "best") -> StoredWeights:
    """The weights of an exported SavedModel (from its checkpoint alone: its graph is never loaded or run), a
    training workdir (its `which` model) or a `.keras` file (safe mode), with the joints the file records.

    Raises FileNotFoundError / ValueError naming the path when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: does not exist")
    if wd.is_savedmodel(path):
        metadata = wd.ExportMetadata.read(path)
        return StoredWeights(read_savedmodel_variables(path), metadata.joint_subset(), f"SavedModel {path}")
    trained = load_trained(path, which)    # a workdir or a .keras file: safe mode
    return StoredWeights(trained.weights(), trained.joints, f"{trained.kind} {path}")


def read_savedmodel_variables(path) -> dict:
    """Layer-path name ("stem_conv/kernel") -> value of an exported SavedModel's variables, read from its
    checkpoint (`variables/variables`) alone: the SavedModel's graph is never loaded or executed."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    prefix = Path(path) / "variables" / "variables"
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError) as e:
        raise ValueError(f"{path}: its variables ({prefix}) cannot be read ({type(e).__name__})") from None
    out = {}
    for node in graph.nodes:
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE" and attribute.full_name:
                out[attribute.full_name.rsplit(":", 1)[0]] = np.asarray(reader.get_tensor(attribute.checkpoint_key))
    return out


def net_from_saved(config, subset, synchronized_bn: bool, saved_path: Path):
    """Build the config's network and take every weight and `trainable` flag from a saved `.keras` model of
    the same architecture (a transfer-initialised workdir), matched by layer-path name.

    Rebuilding rather than loading keeps the BatchNormalization mode right for the current strategy.
    """
    from kpt_tf.models import build_net
    from kpt_tf.models.weights import EVERY_DIFFERENCE, CopyRefused, copy_by_name, weights_by_name

    net = build_net(config, subset, synchronized_bn)
    saved = load_keras(saved_path)
    try:
        copy_by_name(net, weights_by_name(saved), str(saved_path), refuse=EVERY_DIFFERENCE)
    except CopyRefused as e:
        raise ValueError(f"{saved_path}: does not match the config's network: {e.details}") from None
    saved_layers = {layer.name: layer for layer in saved.layers}
    for layer in net.layers:
        if layer.weights:
            layer.trainable = saved_layers[layer.name].trainable
    return net


# --- untrusted files ------------------------------------------------------------------------------------

def load_keras(path):
    """A `.keras` file in Keras safe mode only: a file carrying Python code (a Lambda layer's bytecode) is
    refused before any of it runs. A truncated or foreign file is refused naming the file."""
    import zipfile

    import keras

    from kpt_tf.models.registry import ARCHITECTURES

    ARCHITECTURES.load_all()    # every architecture's module: registers the custom layers saved files refer to

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .keras file (truncated or corrupt: not a complete zip archive, "
                         f"{path.stat().st_size} bytes)")
    code = _layers_carrying_code(path)
    if code:
        raise ValueError(f"{path}: refused: it carries Python code ({', '.join(code[:3])}); kpt_tf loads .keras "
                         "files in Keras safe mode only, and none of its code was run")
    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            raise ValueError(f"{path}: refused: it carries Python code (e.g. a Lambda layer); kpt_tf loads .keras "
                             "files in Keras safe mode only, and none of its code was run") from None
        raise ValueError(f"{path}: not a kpt_tf .keras model ({str(e).splitlines()[0]})") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .keras file ({type(e).__name__}: {e})") from None
    import numpy as np

    bad = [v.path for v in net.weights if not np.all(np.isfinite(np.asarray(v.numpy())))]
    if bad:
        raise ValueError(f"{path}: {len(bad)} of its {len(net.weights)} weights hold NaN or inf (e.g. {bad[0]}): "
                         "the training that wrote it diverged")
    return net


def _layers_carrying_code(path) -> list:
    """The layers of a `.keras` file's config that hold Python code (Lambda layers, serialised lambdas).

    Checked before Keras sees the file: `safe_mode=True` alone is overridden by a process-wide
    `keras.config.enable_unsafe_deserialization()` (measured on Keras 3.15)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return []        # not a model archive: Keras' own refusal names it
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("Lambda", "__lambda__"):
                found.append(str((node.get("config") or {}).get("name", node["class_name"])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found
