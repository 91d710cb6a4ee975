"""KPTransfer experiment: source left side -> target right side (midline joints in neither)."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["left", "right"], "kptransfer_left_right")
