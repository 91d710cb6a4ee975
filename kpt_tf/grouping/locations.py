"""Joint locations of the training people, relative to the person centre and in person-box units (so the
mutual information measures pose, not where the person stands in the image), from any annotation source:
a TFRecord directory (its train split), an annotation json (`.json` / `.json.gz`, the MPII schema) or the
release `.mat`. Both kinds use the crop's centre and scale (MPII's `objpos` and `scale` adjusted by
`geometry.adjust_person_box`): location = (joint - centre) / (200 * scale).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kpt_tf import geometry
from kpt_tf.joints import MPII16
from kpt_tf.layouts import KeypointLayout


@dataclasses.dataclass
class Locations:
    xy: np.ndarray          # [N, J, 2] centre-relative, person-box units; J joints of `layout`
    annotated: np.ndarray   # [N, J] bool
    visible: np.ndarray     # [N, J] bool
    source: str
    skipped: int = 0        # people without a usable centre or scale
    layout: KeypointLayout = MPII16   # both readers read MPII's schema


def _from_annotations(path: Path) -> Locations:
    from kpt_tf.mpii.annotations import read_annotations

    people = [p for p in read_annotations(path) if p.split == "train"]
    usable = [p for p in people if p.objpos is not None and p.scale is not None and p.scale > 0
              and np.isfinite(p.scale) and np.isfinite(p.objpos).all()]
    if not usable:
        raise ValueError(f"--data {path}: no training person with a centre (objpos) and a scale")
    centres, scales = geometry.adjust_person_box(np.stack([p.objpos for p in usable]),
                                                 np.array([p.scale for p in usable]))
    joints = np.stack([p.joints for p in usable]).astype(np.float64)
    xy = (joints - centres[:, None, :]) / (geometry.PERSON_BOX_PIXELS * scales[:, None, None])
    return Locations(xy, np.stack([p.annotated for p in usable]) > 0, np.stack([p.visible for p in usable]) > 0,
                     str(path), len(people) - len(usable))


def _from_records(path: Path) -> Locations:
    import tensorflow as tf

    from kpt_tf.data import schema
    from kpt_tf.data.records import shard_files

    def parse(serialized):
        r = schema.parse_example(serialized, decode_image=False)
        return (geometry.apply_affine(r["crop/to_image"], r["joints/xy"], backend="tf"), r["person/center"],
                r["person/scale"], r["joints/annotated"], r["joints/visible"])

    files = shard_files(str(path), "train")
    ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
    parts = [list(map(np.asarray, batch)) for batch in ds.as_numpy_iterator()]
    if not parts:
        raise ValueError(f"--data {path}: its train split holds no record")
    joints, centres, scales, annotated, visible = (np.concatenate([p[k] for p in parts]) for k in range(5))
    if joints.shape[1] != len(MPII16.joints):
        raise ValueError(f"--data {path}: its records hold {joints.shape[1]} joints; the grouping reads "
                         f"{MPII16.dataset}'s {len(MPII16.joints)}-joint records")
    xy = (joints.astype(np.float64) - centres[:, None, :]) / (geometry.PERSON_BOX_PIXELS * scales[:, None, None])
    return Locations(xy, annotated > 0, visible > 0, str(path))


def read_locations(path) -> Locations:
    """Locations of the training people of `path` (TFRecord directory, `.json[.gz]` or release `.mat`)."""
    path = Path(path)
    if path.is_dir():
        return _from_records(path)
    if not path.is_file():
        raise ValueError(f"--data {path} does not exist (give a TFRecord directory, an annotation json or the "
                         "release .mat)")
    if path.name.lower().endswith((".json", ".json.gz", ".mat")):
        return _from_annotations(path)
    raise ValueError(f"--data {path}: not a TFRecord directory, .json, .json.gz or .mat")
