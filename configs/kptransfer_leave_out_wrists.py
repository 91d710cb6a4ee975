"""KPTransfer experiment: leave-out: all joints but the wrists -> all joints."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["all-wrists", "all"], "kptransfer_leave_out_wrists")
