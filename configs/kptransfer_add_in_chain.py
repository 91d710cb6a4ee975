"""KPTransfer experiment: add-in chain: torso and head -> + shoulders -> + elbows -> + wrists -> all, each step from the previous."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["torso_head", "torso_head+shoulders", "torso_head+shoulders+elbows", "torso_head+shoulders+elbows+wrists", "all"], "kptransfer_add_in_chain")
