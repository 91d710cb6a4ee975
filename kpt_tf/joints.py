"""Joint subsets of a keypoint layout (KPTransfer's "domains"), and MPII's 16 joints as module constants.

Layouts are data (kpt_tf/layouts/*.json: joint order and names, flip pairs, skeleton, groups, named subsets). A
`JointSubset` is an ordered subset of one layout's joints, the output channels of a model head; everything else
(records, pipeline, heads, metric, transfer) asks it for indices, names and flip permutations. The module
constants below are MPII's, in the order of ../shared/CONVENTIONS.md, derived from mpii16.json so the file stays
the one source of truth; the code written before layouts existed reads them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from kpt_tf import layouts
from kpt_tf.layouts import KeypointLayout

MPII16: KeypointLayout = layouts.layout("mpii16")

NUM_JOINTS = len(MPII16.joints)

# Index -> canonical name (snake_case, used in configs, flags, reports and JSON keys).
JOINT_NAMES: tuple[str, ...] = MPII16.joints
# The short names of MPII's own files (`dataset_joints` in detections_our_format.mat).
MPII_SHORT_NAMES: tuple[str, ...] = MPII16.short_names
FLIP_PAIRS: tuple[tuple[int, int], ...] = MPII16.flip_pair_indices

# Skeleton edges for drawing (index pairs).
SKELETON: tuple[tuple[int, int], ...] = MPII16.skeleton_indices

# Rows of the PCKh table: (row name, joint indices averaged). Pelvis and thorax have no row.
PCKH_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = MPII16.row_indices
# Joints that never enter the PCKh Mean (CONVENTIONS.md): pelvis, thorax.
EXCLUDED_FROM_MEAN: tuple[int, ...] = MPII16.excluded_from_mean_indices

# Named subsets. Midline joints (pelvis, thorax, neck, head top) belong to neither `left` nor `right`.
# `torso_head` is the start of the paper's add-in chain: the trunk (pelvis, hips, thorax) and the head
# (upper neck, head top); the chain then adds shoulders, elbows, wrists, and finally the legs.
# A copy, so a caller that changes it cannot change the layout.
NAMED_SUBSETS: dict[str, tuple[int, ...]] = dict(MPII16.subset_indices)


def flip_partner(index: int) -> int:
    """The MPII joint a horizontal flip turns `index` into (itself for midline joints)."""
    for a, b in FLIP_PAIRS:
        if index == a:
            return b
        if index == b:
            return a
    return index


@dataclasses.dataclass(frozen=True)
class JointNameMapping:
    """How a source subset's joints meet a target subset's by canonical name (the layouts may differ).

    `mapped` lists the joints both have, in the target's order; `source_channels[k]` and `target_channels[k]` are
    `mapped[k]`'s channels in the two heads. `new` are only in the target (their head channels start untrained),
    `dropped` only in the source."""

    source: str
    target: str
    mapped: tuple[str, ...]
    new: tuple[str, ...]
    dropped: tuple[str, ...]
    source_channels: tuple[int, ...]
    target_channels: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class JointSubset:
    """An ordered subset of one keypoint layout's joints (MPII's 16 unless told): the output channels of a head."""

    indices: tuple[int, ...]
    name: str = ""
    layout: KeypointLayout = MPII16

    def __post_init__(self):
        if isinstance(self.layout, str):
            object.__setattr__(self, "layout", layouts.layout(self.layout))
        joints = self.layout.joints
        if not self.indices:
            raise ValueError(f"joint subset {self.name!r} is empty")
        seen = set()
        for i in self.indices:
            if not isinstance(i, int) or not 0 <= i < len(joints):
                raise ValueError(f"joint subset {self.name!r}: index {i!r} is not in 0..{len(joints) - 1}")
            if i in seen:
                raise ValueError(f"joint subset {self.name!r}: joint {joints[i]!r} appears twice")
            seen.add(i)
        if not self.name:
            object.__setattr__(self, "name", ",".join(joints[i] for i in self.indices))

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "str | Sequence[str] | JointSubset",
              layout: "KeypointLayout | str | None" = None) -> "JointSubset":
        """A named subset (`upper`), or a comma list of joint names, short names, aliases or groups.

        `"all minus wrists"`-style specs are written `all-wrists` (set difference, order kept) and
        `upper+knees` (union, order = the layout's joint order). A `layout:` prefix (`coco17:all-head`,
        `mpii16:upper`) reads the spec against that layout; a spec without one is read against `layout`
        (mpii16 when not given). A spec or subset of another layout than a given `layout` is refused: a config's
        joints must be its data's.
        """
        wanted = _as_layout(layout)
        if isinstance(spec, JointSubset):
            _check_layout_matches(spec.name, spec.layout, wanted)
            return spec
        if not isinstance(spec, str):
            spec = ",".join(spec)
        text = spec.strip().lower()
        if not text:
            raise ValueError("joint subset spec is empty")
        subset_layout, expression = _split_layout_prefix(text, wanted)
        named = subset_layout.subset_indices
        if expression in named:
            return cls(named[expression], text, subset_layout)
        if "+" in expression or "-" in expression:
            return cls._parse_expression(expression, text, subset_layout)
        return cls(_resolve_list(expression, spec, subset_layout), text, subset_layout)

    @classmethod
    def from_names(cls, names: Sequence[str], layout: "KeypointLayout | str | None" = None) -> "JointSubset":
        """The subset a file saved as its canonical joint names (an export's `joints`, a run's summary), in their
        order, of `layout` (mpii16 when not given: files from before layouts were recorded are MPII's)."""
        wanted = _as_layout(layout) or MPII16
        if isinstance(names, str):
            raise TypeError(f"joint names must be a list of names, got the string {names!r}")
        unknown = [n for n in names if n not in wanted.joints]
        if unknown:
            raise ValueError(f"saved joints {', '.join(map(repr, unknown))} are not joints of layout {wanted.name} "
                             f"({', '.join(wanted.joints)})")
        return cls(tuple(wanted.joints.index(n) for n in names), layout=wanted)

    @classmethod
    def _parse_expression(cls, expression: str, text: str, layout: KeypointLayout) -> "JointSubset":
        # Tokens separated by + (union) and - (difference), left to right; result kept in the layout's order.
        tokens = re.split(r"([+-])", expression)
        current = set(_resolve_term(tokens[0].strip(), text, layout))
        for op, term in zip(tokens[1::2], tokens[2::2]):
            items = set(_resolve_term(term.strip(), text, layout))
            current = current | items if op == "+" else current - items
        if not current:
            raise ValueError(f"joint subset {text!r} is empty")
        return cls(tuple(sorted(current)), text, layout)

    # --- views --------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.layout.joints[i] for i in self.indices)

    @property
    def qualified_name(self) -> str:
        """The name with its layout's prefix (`coco17:all-head`), read back the same whatever the context's layout
        (for a name that is a spec: one `parse` made, or the default comma list of joint names)."""
        return self.name if ":" in self.name else f"{self.layout.name}:{self.name}"

    def __len__(self) -> int:
        return len(self.indices)

    def position(self, joint: "int | str") -> int:
        """Channel of a joint (layout index or name) in this subset's head."""
        index = joint if isinstance(joint, int) else _resolve_name(joint, joint, self.layout)
        return self.indices.index(index)

    def channels_of(self, wanted: "JointSubset") -> tuple[int, ...]:
        """The channels of this subset's head that hold `wanted`'s joints, in `wanted`'s order: how another
        network's heatmaps are picked by joint name (a teacher's for its student; across layouts, an MPII head's
        for a COCO one). Raises ValueError naming the joints of `wanted` this subset lacks."""
        missing = [n for n in wanted.names if n not in self.names]
        if missing:
            raise ValueError(f"joints {self.name} lack {', '.join(missing)} of {wanted.name}")
        return tuple(self.names.index(n) for n in wanted.names)

    def name_mapping(self, target: "JointSubset") -> JointNameMapping:
        """How this (source) subset's joints map onto `target`'s by canonical joint name, in any two layouts:
        the joints both have with their channels in each head, the target's new joints and the source's dropped
        ones (what moving a head between data sets keeps, starts fresh and loses)."""
        source_names, target_names = self.names, target.names
        mapped = tuple(n for n in target_names if n in source_names)
        return JointNameMapping(
            source=self.qualified_name, target=target.qualified_name, mapped=mapped,
            new=tuple(n for n in target_names if n not in source_names),
            dropped=tuple(n for n in source_names if n not in target_names),
            source_channels=tuple(source_names.index(n) for n in mapped),
            target_channels=tuple(target_names.index(n) for n in mapped))

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Flip pairs fully inside the subset, as local channel positions."""
        local = {g: k for k, g in enumerate(self.indices)}
        return tuple((local[a], local[b]) for a, b in self.layout.flip_pair_indices if a in local and b in local)

    @property
    def is_flip_closed(self) -> bool:
        """True when every joint's mirror partner is in the subset (flip test possible on the head)."""
        partner = self.layout.flip_partners
        return all(partner[i] in self.indices for i in self.indices)

    def flip_permutation(self) -> tuple[int, ...]:
        """Local channel order after a horizontal flip: out[k] = in[perm[k]].

        Refuses subsets where a flip maps a joint outside the subset (e.g. `left`): their head has no
        channel for the mirrored joint, so a flip test on them is a configuration error.
        """
        partner, joints = self.layout.flip_partners, self.layout.joints
        outside = [i for i in self.indices if partner[i] not in self.indices]
        if outside:
            raise ValueError(
                f"joint subset {self.name!r}: a horizontal flip maps {', '.join(joints[i] for i in outside)} to "
                f"joints outside the subset ({', '.join(joints[partner[i]] for i in outside)}); "
                "flip with this head is a configuration error")
        return tuple(self.indices.index(partner[i]) for i in self.indices)


ALL = JointSubset(NAMED_SUBSETS["all"], "all")


def full_flip_permutation() -> tuple[int, ...]:
    """Flip permutation of all 16 joints (the stored records always carry all 16)."""
    return ALL.flip_permutation()


def _as_layout(layout: "KeypointLayout | str | None") -> KeypointLayout | None:
    if layout is None or isinstance(layout, KeypointLayout):
        return layout
    if isinstance(layout, str):
        return layouts.layout(layout)
    raise TypeError(f"layout must be a KeypointLayout or a layout name ({', '.join(layouts.LAYOUTS)}), "
                    f"got {layout!r}")


def _check_layout_matches(spec: str, spec_layout: KeypointLayout, wanted: KeypointLayout | None) -> None:
    if wanted is not None and spec_layout != wanted:
        raise ValueError(f"joint subset {spec!r} is of layout {spec_layout.name}, but is read against layout "
                         f"{wanted.name} (its data's): write it for {wanted.name} or drop the prefix")


def _split_layout_prefix(text: str, wanted: KeypointLayout | None) -> tuple[KeypointLayout, str]:
    """(layout, expression) of a lowercased spec: `coco17:all-head` names its layout, `all-head` takes `wanted`."""
    if ":" not in text:
        return (wanted or MPII16), text
    prefix, _, expression = (part.strip() for part in text.partition(":"))
    if prefix not in layouts.LAYOUTS:
        raise ValueError(f"joint subset {text!r}: unknown keypoint layout {prefix!r}; layouts: "
                         f"{', '.join(layouts.LAYOUTS)}")
    prefixed = wanted if wanted is not None and wanted.name == prefix else layouts.layout(prefix)
    _check_layout_matches(text, prefixed, wanted)
    if not expression:
        raise ValueError(f"joint subset {text!r}: no joints after the layout prefix")
    return prefixed, expression


def _resolve_name(token: str, spec: str, layout: KeypointLayout) -> int:
    if layout.has_joint(token):
        return layout.index(token)
    short_names = (f" (or {layout.dataset} short names {', '.join(layout.short_names)})"
                   if layout.short_names else "")
    raise ValueError(
        f"joint subset {spec!r}: unknown joint {token.strip()!r}; known joints: {', '.join(layout.joints)}"
        f"{short_names}, groups {', '.join(layout.group_indices)}, subsets {', '.join(layout.subset_indices)}")


def _resolve_term(term: str, spec: str, layout: KeypointLayout) -> tuple[int, ...]:
    if not term:
        raise ValueError(f"joint subset {spec!r}: empty entry")
    if term in layout.subset_indices:
        return layout.subset_indices[term]
    return _resolve_list(term, spec, layout)


def _resolve_list(text: str, spec: str, layout: KeypointLayout) -> tuple[int, ...]:
    groups, subsets = layout.group_indices, layout.subset_indices
    out: list[int] = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise ValueError(f"joint subset {spec!r}: empty entry in the comma list")
        items = groups[token] if token in groups else (subsets[token] if token in subsets
                                                       else (_resolve_name(token, spec, layout),))
        for i in items:
            if i in out:
                raise ValueError(f"joint subset {spec!r}: joint {layout.joints[i]!r} listed twice")
            out.append(i)
    return tuple(out)
