"""Models for the benchmark scripts when no trained one is given: a workdir holding a config's untrained network
(latency and size only), and the tiny one the suite runs every script with. No flags here: scripts share it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TINY_CONFIG = """from configs.base import base_config


def get_config():
    c = base_config()
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = 1, 16, 2, 64
    return c
"""


def as_workdir(label: str, spec: str, scratch: Path) -> Path:
    """A workdir or .keras path as given; `config:FILE` becomes a workdir holding that config's untrained network."""
    if not spec.startswith("config:"):
        return Path(spec)
    from kpt_tf import workdir as wd
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import build_net, resolve_config

    module_spec = importlib.util.spec_from_file_location(f"bench_config_{label}", spec[len("config:"):])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = resolve_config(module.get_config())
    out = Path(scratch) / f"untrained_{label}"
    out.mkdir(parents=True, exist_ok=True)
    build_net(config, JointSubset.parse(config.joints)).save(out / wd.BEST_MODEL)
    wd.save_config(config, out)
    return out


def tiny_workdir(scratch: Path) -> Path:
    """An untrained 1 x 16 hourglass at 64 px, depth 2: seconds to export and run."""
    path = Path(scratch) / "tiny_config.py"
    path.write_text(TINY_CONFIG)
    return as_workdir("tiny", f"config:{path}", scratch)
