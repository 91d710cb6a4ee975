"""KPTransfer across data sets: a network trained on MPII's 16 joints hands its weights to one for COCO's 17.

The trunk moves by layer name and the heads by joint name: the 12 limb joints both layouts share (shoulders,
elbows, wrists, hips, knees, ankles) start from the MPII network's channels, COCO's face joints (nose, eyes, ears)
start fresh, MPII's midline joints (pelvis, thorax, upper neck, head top) are dropped (kpt_tf.transfer).

Defaults point at the embedded people in both formats, one generation converted twice:

    python -m data_prep.embedded --out runs/embedded --input_size 128                    # -> runs/embedded/records
    python -m data_prep.embedded --out runs/embedded --input_size 128 --layout coco17    # -> .../coco_records
    python -m kpt_tf.experiments.kptransfer --config configs/kptransfer_mpii_to_coco.py --workdir runs/mpii2coco

On real data: `--config.experiment.data_dirs="('/data/mpii/records','/data/coco/records')"`; scoring the target
on COCO's metric is `kpt_tf.evaluate --model RUN --data COCO_RECORDS --coco_gt person_keypoints_val2017.json`.
"""

from configs.kptransfer_base import kptransfer_config


def get_config():
    c = kptransfer_config(["all", "all"], "kptransfer_mpii_to_coco")
    c.data.dir = "runs/embedded/records"
    c.experiment.data_dirs = ("runs/embedded/records", "runs/embedded/coco_records")
    return c
