"""data_prep.embedded in the coco17 layout: the generator's COCO files become coco17 records that stream with 17
joints, and one generation serves both layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_prep import embedded
from kpt_tf.data import manifest as mf


def test_one_generation_gives_coco_records_streaming_17_joints_and_mpii_records(tmp_path, monkeypatch):
    from kpt_tf.data import pipeline

    generations = []
    generate = embedded.generate
    monkeypatch.setattr(embedded, "generate", lambda *a, **k: generations.append(k) or generate(*a, **k))
    settings = dict(num_train=5, num_val=3, seed=2, input_size=64, num_workers=1, progress=False)

    coco = embedded.ensure_embedded_dataset(tmp_path, layout="coco17", **settings)
    assert coco == tmp_path / "coco_records"
    mpii = embedded.ensure_embedded_dataset(tmp_path, **settings)
    assert mpii == tmp_path / "records" and len(generations) == 1         # the MPII records reused the generation
    stamps = {p: p.stat().st_mtime_ns for p in (coco / mf.MANIFEST_NAME, tmp_path / "embedded_coco.json")}
    assert embedded.ensure_embedded_dataset(tmp_path, layout="coco17", **settings) == coco
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and len(generations) == 1    # cached: nothing redone

    manifest = json.loads((coco / mf.MANIFEST_NAME).read_text())       # both splits in one directory
    assert manifest["layout"] == "coco17" and set(manifest["splits"]) == {"train", "val"}
    for split in ("train", "val"):
        assert manifest["splits"][split]["skipped"] == 0
        people = json.loads((tmp_path / "synth" / f"person_keypoints_{split}.json").read_text())["annotations"]
        batches = list(pipeline.make_dataset(coco, split, "all", pipeline.StreamOptions(
            batch_size=4, training=False, input_size=64, with_meta=True)))
        joints = np.concatenate([b["joints"].numpy() for b in batches])
        annotated = np.concatenate([b["annotated"].numpy() for b in batches])
        assert joints.shape == (len(people), 17, 2)
        assert annotated.sum() == sum(p["num_keypoints"] for p in people)     # every labelled keypoint came through
    batch = next(iter(pipeline.make_dataset(mpii, "train", "all", pipeline.StreamOptions(
        batch_size=2, training=False, input_size=64))))
    assert batch[1]["joints"].shape == (2, 16, 2)


def test_an_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mpii16, coco17"):
        embedded.ensure_embedded_dataset(tmp_path, 2, 1, layout="coco18")
    assert not (tmp_path / "synth").exists()
