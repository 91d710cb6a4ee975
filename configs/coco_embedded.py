"""The demo's network and recipe (configs/demo.py) on the embedded people in COCO's layout: 17 joints, crops
from the annotated boxes (data_prep.coco_to_tfrecord).

    python -m data_prep.embedded --out runs/embedded --input_size 128 --layout coco17
    python -m kpt_tf.train --config configs/coco_embedded.py --workdir runs/coco_demo
    python -m kpt_tf.evaluate --model runs/coco_demo --data runs/embedded/coco_records \\
        --coco_gt runs/embedded/synth/person_keypoints_val.json

`joints` is read against the records' layout (`all` on COCO records is COCO's 17, `all-head` its 12 limb joints,
the ones MPII shares); the prefix `coco17:` names the layout outright.
"""

from configs.demo import get_config as demo_config


def get_config():
    c = demo_config()
    c.name = "coco_embedded"
    c.joints = "coco17:all"          # the layout named, so that --dry_run sizes COCO's heads before the records exist
    c.data.dir = "runs/embedded/coco_records"
    return c
