"""KPTransfer into a PBN branch: a plain hourglass trained on a group's joints initialises that branch (its last
stacks onto the branch's stacks, heads by joint name); the trunk and the other branches are untouched."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from configs.base import base_config
from configs.pbn_hg_mpii import MPII_MI_GROUPS_5, pbn_model
from kpt_tf.joints import JointSubset
from kpt_tf.models import architecture, build_net
from kpt_tf.transfer import TransferError, read_source, transfer_into_branch, transfer_to_workdir
from tests.conftest import REPO

LEGS = "right_ankle,right_knee,left_knee,left_ankle"   # the group ank_kne, in its order


def hourglass_config(joints: str, stacks: int, channels: int):
    c = base_config()
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, channels, 1, 64
    return c


def pbn_config(joints: str = "all", branch_stacks: int = 2):
    c = hourglass_config(joints, 1, 16)
    c.model = pbn_model(c.model, 1, branch_stacks, 8, MPII_MI_GROUPS_5, "test")
    return c


def weights(net):
    return {v.path: np.array(v.numpy()) for v in net.weights}


def saved_source(directory, joints: str, stacks: int = 3, channels: int = 8):
    """A plain hourglass on `joints` with random non-trivial weights, as a .keras file beside its config."""
    config = hourglass_config(joints, stacks, channels)
    keras.utils.set_random_seed(3)
    net = build_net(config, JointSubset.parse(joints))
    rng = np.random.default_rng(1)
    for v in net.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.1 + (1.0 if "variance" in v.path else 0.0))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(config.to_json())
    net.save(directory / "best.keras")
    return weights(net), directory / "best.keras"


@pytest.mark.slow
def test_a_branch_takes_the_last_stacks_of_a_network_trained_on_its_joints(tmp_path):
    # a 3-stack source on `lower`: its stacks 1 and 2 become the 2-stack branch ank_kne; its hips and pelvis
    # head channels are not the group's and are not used
    source, path = saved_source(tmp_path / "src", "lower")
    config = pbn_config()
    keras.utils.set_random_seed(0)
    net = build_net(config, JointSubset.parse("all"))
    fresh = weights(net)
    branch = {b.name: b for b in architecture("pbn").branches(config.model, JointSubset.parse("all"))}["ank_kne"]
    report = transfer_into_branch(net, read_source(path), branch, architecture_of_net="pbn")
    got = weights(net)
    lower = JointSubset.parse("lower")
    legs = [lower.position(j) for j in LEGS.split(",")]
    for name, value in got.items():
        layer = name.split("/")[0]
        if not layer.startswith("branch_ank_kne_") or layer == "branch_ank_kne_in":   # _in: the width change
            continue
        # branch stack b <- source stack b + 1: hg0_* <- hg1_*, head1 <- head2, ...
        kind, index, rest = re.match(r"^(hg|stack|head|reinject)(\d+)(.*)$", layer[len("branch_ank_kne_"):]).groups()
        source_name = f"{kind}{int(index) + 1}{rest}" + name[len(layer):]
        if kind == "head":                                        # the group's joints, by name
            axis = 3 if name.endswith("kernel") else 0
            np.testing.assert_array_equal(value, np.take(source[source_name], legs, axis=axis), err_msg=name)
        elif kind == "reinject" and rest == "_heatmaps" and name.endswith("kernel"):
            np.testing.assert_array_equal(value, np.take(source[source_name], legs, axis=2), err_msg=name)
        else:
            np.testing.assert_array_equal(value, source[source_name], err_msg=name)
    untouched = [n for n in got if not n.startswith("branch_ank_kne_")]
    assert untouched and all(np.array_equal(got[n], fresh[n]) for n in untouched)
    assert report.shared_joints == LEGS.split(",")
    assert {n.split("/")[0] for n, _ in report.only_in_target} == {"branch_ank_kne_in"}   # fresh, from the trunk
    assert not report.only_in_source and not report.shape_mismatched
    assert report.renamed_layers["head2"] == "branch_ank_kne_head1"
    assert "hg0_down1_res1_conv1" not in report.renamed_layers          # the source's first stack: the trunk's part
    transfer_to_workdir(None, config, tmp_path / "out", branch_sources={"ank_kne": path}, verbose=False)
    saved_net = weights(keras.saving.load_model(tmp_path / "out" / "init.keras", compile=False))
    np.testing.assert_array_equal(saved_net["branch_ank_kne_hg1_down1_res1_conv1/kernel"],
                                  source["hg2_down1_res1_conv1/kernel"])
    saved = json.loads((tmp_path / "out" / "transfer_report.json").read_text())
    assert saved["branches"]["ank_kne"]["renamed_layers"]["head1"] == "branch_ank_kne_head0"
    assert "branch ank_kne from" in (tmp_path / "out" / "transfer_report.txt").read_text()


@pytest.mark.slow
def test_trunk_from_one_source_and_a_branch_from_another(tmp_path):
    trunk_source, trunk_path = saved_source(tmp_path / "trunk", "all", stacks=1, channels=16)
    _, leg_path = saved_source(tmp_path / "legs", LEGS, stacks=2)
    config = pbn_config()
    transfer_to_workdir(trunk_path, config, tmp_path / "out", map_heads=True, allow_partial=True,
                        branch_sources={"ank_kne": leg_path}, verbose=False)
    got = weights(keras.saving.load_model(tmp_path / "out" / "init.keras", compile=False))
    np.testing.assert_array_equal(got["stem_conv/kernel"], trunk_source["stem_conv/kernel"])
    legs = read_source(leg_path).weights
    np.testing.assert_array_equal(got["branch_ank_kne_head1/kernel"], legs["head1/kernel"])
    np.testing.assert_array_equal(got["branch_ank_kne_head0/kernel"], legs["head0/kernel"])


@pytest.mark.slow
def test_branch_transfers_that_cannot_work_are_refused_and_write_nothing(tmp_path):
    _, narrow = saved_source(tmp_path / "wide", "lower", stacks=2, channels=16)   # branch width is 8
    _, one_stack = saved_source(tmp_path / "one", "lower", stacks=1)
    config = pbn_config()
    cases = [({"ank_kne": narrow}, "differ from the branch"),
             ({"ank_kne": one_stack}, r"has 1 stack\(s\); branch ank_kne has 2"),
             ({"no_such_branch": one_stack}, "the target has the branches")]
    for k, (sources, message) in enumerate(cases):
        with pytest.raises(TransferError, match=message):
            transfer_to_workdir(None, config, tmp_path / f"out{k}", branch_sources=sources, verbose=False)
        assert not (tmp_path / f"out{k}").exists()
    with pytest.raises(TransferError, match=r"no branches \(hourglass\)"):
        transfer_to_workdir(None, hourglass_config("all", 2, 16), tmp_path / "plain",
                            branch_sources={"ank_kne": one_stack}, verbose=False)


@pytest.mark.slow
def test_branch_source_on_the_command_line(tmp_path):
    _, path = saved_source(tmp_path / "src", LEGS, stacks=2)
    config = tmp_path / "pbn.py"
    config.write_text(
        "from tests.kpt_tf.test_transfer_branches import pbn_config\n\ndef get_config():\n    return pbn_config()\n")
    run = subprocess.run([sys.executable, "-m", "kpt_tf.transfer", f"--target_config={config}",
                          f"--branch_source=ank_kne={path}", f"--out={tmp_path / 'out'}"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "branch ank_kne from" in run.stdout and (tmp_path / "out" / "init.keras").exists()
    bad = subprocess.run([sys.executable, "-m", "kpt_tf.transfer", f"--target_config={config}",
                          "--branch_source=ank_kne", f"--out={tmp_path / 'out2'}"], cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "BRANCH=PATH" in bad.stderr
