"""KPTransfer experiment, the add-in chain: torso and head -> + shoulders -> + elbows -> + wrists -> all, each step
starting from the previous one."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    steps = ["torso_head", "torso_head+shoulders", "torso_head+shoulders+elbows", "torso_head+shoulders+elbows+wrists",
             "all"]
    return kptransfer_config(steps, "kptransfer_add_in_chain")
