"""The 16 MPII joints, their flip pairs, and named joint subsets (KPTransfer's "domains").

This is the only place that knows joint order and names. Everything else (records, pipeline, heads,
metric, transfer) asks a `JointSubset` for indices, names and flip permutations.
Order and pairs follow ../shared/CONVENTIONS.md (the MPII / stacked-hourglass order).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

NUM_JOINTS = 16

# Index -> canonical name (snake_case, used in configs, flags, reports and JSON keys).
JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
# The short names of MPII's own files (`dataset_joints` in detections_our_format.mat).
MPII_SHORT_NAMES: tuple[str, ...] = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
    "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# Skeleton edges for drawing (index pairs).
SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)

# Rows of the PCKh table: (row name, joint indices averaged). Pelvis and thorax have no row.
PCKH_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Head", (9,)), ("Shoulder", (12, 13)), ("Elbow", (11, 14)), ("Wrist", (10, 15)),
    ("Hip", (2, 3)), ("Knee", (1, 4)), ("Ankle", (0, 5)),
)
# Joints that never enter the PCKh Mean (CONVENTIONS.md): pelvis, thorax.
EXCLUDED_FROM_MEAN: tuple[int, ...] = (6, 7)

_ALIASES = {}
for _i, (_long, _short) in enumerate(zip(JOINT_NAMES, MPII_SHORT_NAMES)):
    _ALIASES[_long] = _i
    _ALIASES[_short] = _i
    _ALIASES[_long.replace("_", " ")] = _i
_ALIASES["neck"] = 8
_ALIASES["head"] = 9

# Groups usable inside comma lists too ("wrists,knees").
_GROUPS = {
    "ankles": (0, 5), "knees": (1, 4), "hips": (2, 3), "wrists": (10, 15), "elbows": (11, 14),
    "shoulders": (12, 13),
}

# Named subsets. Midline joints (pelvis, thorax, neck, head top) belong to neither `left` nor `right`.
# `torso_head` is the start of the paper's add-in chain: the trunk (pelvis, hips, thorax) and the head
# (upper neck, head top); the chain then adds shoulders, elbows, wrists, and finally the legs.
NAMED_SUBSETS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(NUM_JOINTS)),
    "upper": (7, 8, 9, 10, 11, 12, 13, 14, 15),
    "lower": (0, 1, 2, 3, 4, 5, 6),
    "left": (3, 4, 5, 13, 14, 15),
    "right": (0, 1, 2, 10, 11, 12),
    "arms": (10, 11, 12, 13, 14, 15),
    "legs": (0, 1, 2, 3, 4, 5),
    "torso_head": (2, 3, 6, 7, 8, 9),
}


def flip_partner(index: int) -> int:
    """The joint a horizontal flip turns `index` into (itself for midline joints)."""
    for a, b in FLIP_PAIRS:
        if index == a:
            return b
        if index == b:
            return a
    return index


@dataclasses.dataclass(frozen=True)
class JointSubset:
    """An ordered subset of the 16 MPII joints: the output channels of a model head."""

    indices: tuple[int, ...]
    name: str = ""

    def __post_init__(self):
        if not self.indices:
            raise ValueError(f"joint subset {self.name!r} is empty")
        seen = set()
        for i in self.indices:
            if not isinstance(i, int) or not 0 <= i < NUM_JOINTS:
                raise ValueError(f"joint subset {self.name!r}: index {i!r} is not in 0..{NUM_JOINTS - 1}")
            if i in seen:
                raise ValueError(f"joint subset {self.name!r}: joint {JOINT_NAMES[i]!r} appears twice")
            seen.add(i)
        if not self.name:
            object.__setattr__(self, "name", ",".join(JOINT_NAMES[i] for i in self.indices))

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "str | Sequence[str] | JointSubset") -> "JointSubset":
        """A named subset (`upper`), or a comma list of joint names, MPII short names or groups.

        `"all minus wrists"`-style specs are written `all-wrists` (set difference, order kept) and
        `upper+knees` (union, order = 16-joint order).
        """
        if isinstance(spec, JointSubset):
            return spec
        if not isinstance(spec, str):
            spec = ",".join(spec)
        text = spec.strip().lower()
        if not text:
            raise ValueError("joint subset spec is empty")
        if text in NAMED_SUBSETS:
            return cls(NAMED_SUBSETS[text], text)
        if "+" in text or "-" in text.replace("_", ""):
            return cls._parse_expression(text)
        return cls(_resolve_list(text, spec), text)

    @classmethod
    def _parse_expression(cls, text: str) -> "JointSubset":
        # Tokens separated by + (union) and - (difference), left to right; result kept in 16-joint order.
        import re

        tokens = re.split(r"([+-])", text)
        current = set(_resolve_term(tokens[0].strip(), text))
        for op, term in zip(tokens[1::2], tokens[2::2]):
            items = set(_resolve_term(term.strip(), text))
            current = current | items if op == "+" else current - items
        if not current:
            raise ValueError(f"joint subset {text!r} is empty")
        return cls(tuple(sorted(current)), text)

    # --- views --------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(JOINT_NAMES[i] for i in self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def position(self, joint: "int | str") -> int:
        """Channel of a joint (global index or name) in this subset's head."""
        index = joint if isinstance(joint, int) else _resolve_name(joint, joint)
        return self.indices.index(index)

    def channels_of(self, wanted: "JointSubset") -> tuple[int, ...]:
        """The channels of this subset's head that hold `wanted`'s joints, in `wanted`'s order: how another
        network's heatmaps are picked by joint name (a teacher's for its student). Raises ValueError naming the
        joints of `wanted` this subset lacks."""
        missing = [n for n in wanted.names if n not in self.names]
        if missing:
            raise ValueError(f"joints {self.name} lack {', '.join(missing)} of {wanted.name}")
        return tuple(self.position(n) for n in wanted.names)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Flip pairs fully inside the subset, as local channel positions."""
        local = {g: k for k, g in enumerate(self.indices)}
        return tuple((local[a], local[b]) for a, b in FLIP_PAIRS if a in local and b in local)

    @property
    def is_flip_closed(self) -> bool:
        """True when every joint's mirror partner is in the subset (flip test possible on the head)."""
        return all(flip_partner(i) in self.indices for i in self.indices)

    def flip_permutation(self) -> tuple[int, ...]:
        """Local channel order after a horizontal flip: out[k] = in[perm[k]].

        Refuses subsets where a flip maps a joint outside the subset (e.g. `left`): their head has no
        channel for the mirrored joint, so a flip test on them is a configuration error.
        """
        outside = [JOINT_NAMES[i] for i in self.indices if flip_partner(i) not in self.indices]
        if outside:
            raise ValueError(
                f"joint subset {self.name!r}: a horizontal flip maps {', '.join(outside)} to joints outside "
                f"the subset ({', '.join(JOINT_NAMES[flip_partner(JOINT_NAMES.index(n))] for n in outside)}); "
                "flip with this head is a configuration error")
        return tuple(self.indices.index(flip_partner(i)) for i in self.indices)



ALL = JointSubset(NAMED_SUBSETS["all"], "all")


def full_flip_permutation() -> tuple[int, ...]:
    """Flip permutation of all 16 joints (the stored records always carry all 16)."""
    return ALL.flip_permutation()


def _resolve_name(token: str, spec: str) -> int:
    key = token.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(
        f"joint subset {spec!r}: unknown joint {token.strip()!r}; known joints: {', '.join(JOINT_NAMES)} "
        f"(or MPII short names {', '.join(MPII_SHORT_NAMES)}), groups {', '.join(_GROUPS)}, "
        f"subsets {', '.join(NAMED_SUBSETS)}")


def _resolve_term(term: str, spec: str) -> tuple[int, ...]:
    if not term:
        raise ValueError(f"joint subset {spec!r}: empty entry")
    if term in NAMED_SUBSETS:
        return NAMED_SUBSETS[term]
    return _resolve_list(term, spec)


def _resolve_list(text: str, spec: str) -> tuple[int, ...]:
    out: list[int] = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise ValueError(f"joint subset {spec!r}: empty entry in the comma list")
        items = _GROUPS[token] if token in _GROUPS else (NAMED_SUBSETS[token] if token in NAMED_SUBSETS
                                                         else (_resolve_name(token, spec),))
        for i in items:
            if i in out:
                raise ValueError(f"joint subset {spec!r}: joint {JOINT_NAMES[i]!r} listed twice")
            out.append(i)
    return tuple(out)
