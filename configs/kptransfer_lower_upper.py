"""KPTransfer experiment: source lower body -> target upper body."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["lower", "upper"], "kptransfer_lower_upper")
