"""The generated people in COCO's person-keypoints format: person_keypoints_train.json and person_keypoints_val.json
beside annotations.json, for the same images and the same people in the same order.

Per person (one COCO annotation, its id = its 1-based position in annotations.json, its image's id = the image's
`annolist_index`):
- the 12 limb joints are the MPII annotation's, read from its joint_self rows (the same pixels: COCO positions are
  0-based as HRNet and mmpose read them, annotations.json's are 1-based); v = 2 where MPII says annotated and
  visible, 1 annotated but occluded, 0 (x = y = 0) not annotated (outside the image);
- nose, eyes and ears come from the painted head (painting.face_keypoints, scene.coco_fields): v = 0 outside the
  image, 1 on the far side of the head or covered by a shape drawn after it, 2 otherwise;
- bbox [x, y, w, h] is the tight box of the painted silhouette within the image, area its pixel count.
Built from what render_synthetic_image computed for the MPII annotation: nothing is rendered again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from data_prep.synth.painting import FACE_KEYPOINTS
from kpt_tf.layouts import layout
from kpt_tf.mpii.coords import parse_joint_self

COCO_FILES = {"train": "person_keypoints_train.json", "val": "person_keypoints_val.json"}
PERSON_CATEGORY_ID = 1
_MPII, _COCO = layout("mpii16"), layout("coco17")
DECIMALS = 3        # as annotations.json writes its positions


def person_category() -> dict:
    """COCO's person category: coco17's joint names as `keypoints`, its skeleton 1-based as COCO's files have it."""
    return {"supercategory": "person", "id": PERSON_CATEGORY_ID, "name": "person", "keypoints": list(_COCO.joints),
            "skeleton": [[a + 1, b + 1] for a, b in _COCO.skeleton_indices]}


def _point(x, y, v: int) -> list:
    return [round(float(x), DECIMALS), round(float(y), DECIMALS), v] if v else [0, 0, 0]


def coco_person(joint_self: list, person: dict) -> dict:
    """keypoints (51 numbers), num_keypoints, bbox, area of one person: its annotations.json `joint_self` rows and
    render_synthetic_image's dict of it (face_joints, face_labelled, face_visible, box, area)."""
    limbs, annotated, visible = parse_joint_self(joint_self)
    keypoints = []
    for name in _COCO.joints:
        if name in FACE_KEYPOINTS:
            k = FACE_KEYPOINTS.index(name)
            v = (2 if person["face_visible"][k] else 1) if person["face_labelled"][k] else 0
            keypoints += _point(*person["face_joints"][k], v)
        else:
            j = _MPII.index(name)
            keypoints += _point(*limbs[j], (2 if visible[j] else 1) if annotated[j] else 0)
    x1, y1, x2, y2 = (float(v) for v in person["box"])
    return {"keypoints": keypoints, "num_keypoints": sum(1 for v in keypoints[2::3] if v),
            "bbox": [round(x1, DECIMALS), round(y1, DECIMALS), round(x2 - x1, DECIMALS), round(y2 - y1, DECIMALS)],
            "area": float(person["area"])}


def write_coco_files(output_dir, images: list[tuple[str, int, int, list[dict]]], is_validation: list[bool]) -> dict:
    """Write person_keypoints_{train,val}.json; -> {split: path}.

    `images`: per image in annotations.json's order, (file name, width, height, its people's `coco_person`
    dicts); `is_validation`: per image. Both files are written, an empty split as a file without images."""
    content = {split: {"images": [], "annotations": [], "categories": [person_category()]} for split in COCO_FILES}
    person_id = 0
    for image_index, ((name, width, height, people), is_val) in enumerate(zip(images, is_validation, strict=True)):
        split = content["val" if is_val else "train"]
        split["images"].append({"id": image_index + 1, "file_name": name, "width": int(width),
                                "height": int(height)})
        for person in people:
            person_id += 1
            split["annotations"].append({"id": person_id, "image_id": image_index + 1,
                                         "category_id": PERSON_CATEGORY_ID, **person, "iscrowd": 0})
    paths = {}
    for split, file_name in COCO_FILES.items():
        paths[split] = Path(output_dir) / file_name
        tmp = paths[split].with_suffix(".json.tmp")        # written whole, then renamed: never half a file
        tmp.write_text(json.dumps(content[split], separators=(",", ":")))
        os.replace(tmp, paths[split])
    return paths
