"""KPTransfer experiment: source arms -> target legs."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["arms", "legs"], "kptransfer_arms_legs")
