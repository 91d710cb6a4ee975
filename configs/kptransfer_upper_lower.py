"""KPTransfer experiment: source upper body -> target lower body."""

from configs.kptransfer_base import kptransfer_config


def get_config():
    return kptransfer_config(["upper", "lower"], "kptransfer_upper_lower")
