"""Keypoint layouts as data: which joints a data set annotates, in which channel order, and how they pair and group.

A layout is a JSON file beside this module (`mpii16.json`, `coco17.json`); `layout(name)` loads and validates one
once. Joints carry canonical snake_case names, shared between layouts where the joint is the same (the 12 limb
joints `right_ankle` ... `left_wrist` of MPII and COCO), so heads, teachers and transferred weights are matched by
joint name across data sets. Everything in a file refers to joints by canonical name; the index forms here
(`flip_pair_indices`, `subset_indices`, ...) are derived on load, so the file is the one source of truth.

File format (all keys required, unknown keys refused):
  format              "kpt_tf keypoint layout 1"
  name, dataset       the layout's name (= the file's stem) and the data set's display name ("MPII")
  description         free text
  joints              canonical names in channel order
  short_names         [] or one per joint: the names of the data set's own files (MPII's `rank`); also aliases
  aliases             {alias: joint}: more names a joint subset spec may use
  flip_pairs          [[a, b], ...]: joints a horizontal flip swaps; the others are on the midline
  skeleton            [[a, b], ...]: edges for drawing
  rows                [{"row": "Head", "joints": [...]}, ...]: the report's rows (MPII's PCKh table)
  excluded_from_mean  joints the report's Mean leaves out (MPII: pelvis, thorax)
  groups              {name: [joints]}: usable inside comma lists ("wrists,knees")
  subsets             {name: [joints]}: named subsets (`all`, every joint in channel order, is implicit)
  oks_sigmas          null or one per joint: COCO's per-keypoint OKS sigmas
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path

FORMAT = "kpt_tf keypoint layout 1"
DIRECTORY = Path(__file__).resolve().parent
LAYOUTS: tuple[str, ...] = ("mpii16", "coco17")
DEFAULT_LAYOUT = "mpii16"

# Joint, group and subset names must be usable in a subset expression: no spaces, commas, `+`, `-` or `:`.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYS = ("format", "name", "dataset", "description", "joints", "short_names", "aliases", "flip_pairs", "skeleton",
         "rows", "excluded_from_mean", "groups", "subsets", "oks_sigmas", "pck_normalizer")
# What a PCK figure divides a joint's error by: MPII's head box (PCKh) or, for data sets without head boxes
# (COCO), the person box (kpt_tf.metrics.pckh.normalizers).
PCK_NORMALIZERS = ("head_box", "person_box")
# How reports name the figure at the 0.5 threshold of each normaliser (on a person box, 0.5 x (0.1 x the box's longer
# side) is mmpose's bbox-normalised PCK@0.05; BUILD_NOTES, "COCO converter ..."), and the stricter figure at 0.1
# where the field quotes one: MPII's PCKh@0.1 (HRNet's tables); a person-box PCK at 0.01 of the box is not quoted.
PCK_FIGURES = {"head_box": ("PCKh@0.5", "PCKh@0.1"), "person_box": ("PCK@0.05 of the person box", None)}
PCK_LABELS = {normaliser: label for normaliser, (label, _) in PCK_FIGURES.items()}


def strict_pck_label(label: str) -> str | None:
    """The stricter (@0.1) figure reported beside the figure named `label`, or None where none is quoted."""
    return next((strict for main, strict in PCK_FIGURES.values() if main == label), None)


class LayoutError(ValueError):
    """A layout file or definition is malformed (the message names the file and the problem)."""


Pairs = tuple[tuple[str, str], ...]
NamedJoints = tuple[tuple[str, tuple[str, ...]], ...]


@dataclasses.dataclass(frozen=True, repr=False)
class KeypointLayout:
    """A data set's keypoints: names in channel order, flip pairs, skeleton, report rows, groups, subsets, sigmas.

    Joints are named everywhere; the `*_indices` views and `index` give channel indices. Construction validates
    (a `LayoutError` names the problem); `load_layout` adds the file's name to it."""

    name: str
    dataset: str
    joints: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    aliases: Pairs = ()                   # (alias, joint)
    flip_pairs: Pairs = ()
    skeleton: Pairs = ()
    rows: NamedJoints = ()
    excluded_from_mean: tuple[str, ...] = ()
    groups: NamedJoints = ()
    subsets: NamedJoints = ()              # without `all`, which every layout has
    oks_sigmas: tuple[float, ...] | None = None
    pck_normalizer: str = "head_box"
    description: str = ""

    def __post_init__(self):
        # Lists and dicts given in code become tuples: a layout is hashable (a JointSubset's field) and immutable.
        def named(value):
            return value.items() if isinstance(value, dict) else value

        for field in ("joints", "short_names", "excluded_from_mean"):
            if isinstance(getattr(self, field), str):
                raise LayoutError(f"{field} is one string, not a list of joint names")
            object.__setattr__(self, field, tuple(getattr(self, field)))
        for field in ("aliases", "flip_pairs", "skeleton"):
            object.__setattr__(self, field, tuple(tuple(pair) for pair in named(getattr(self, field))))
        for field in ("rows", "groups", "subsets"):
            frozen = tuple((name, tuple(joints)) for name, joints in named(getattr(self, field)))
            object.__setattr__(self, field, frozen)
        if self.oks_sigmas is not None:
            object.__setattr__(self, "oks_sigmas", tuple(self.oks_sigmas))
        _check_layout(self)

    def __repr__(self) -> str:
        return f"KeypointLayout({self.name!r}, {len(self.joints)} joints)"

    @property
    def pck_label(self) -> str:
        """The name of this layout's validation figure in reports and plots (PCK_LABELS)."""
        return PCK_LABELS[self.pck_normalizer]

    # --- lookups (derived from the named fields; not part of equality) -------------------------------------
    @functools.cached_property
    def _token_indices(self) -> dict[str, int]:
        # Every name a spec may use for a joint: canonical, canonical with spaces, short name, alias.
        tokens = {}
        for i, joint in enumerate(self.joints):
            tokens[joint] = tokens[joint.replace("_", " ")] = i
        for i, short in enumerate(self.short_names):
            tokens[short] = i
        for alias, joint in self.aliases:
            tokens[alias] = self.joints.index(joint)
        return tokens

    def index(self, joint: str) -> int:
        """Channel index of a joint by canonical name, short name or alias (case and spaces as in specs)."""
        key = joint.strip().lower()
        if key not in self._token_indices:
            raise KeyError(joint)
        return self._token_indices[key]

    def has_joint(self, joint: str) -> bool:
        return joint.strip().lower() in self._token_indices

    def _indices(self, names) -> tuple[int, ...]:
        return tuple(self.joints.index(n) for n in names)

    @functools.cached_property
    def flip_pair_indices(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._indices(pair) for pair in self.flip_pairs)

    @functools.cached_property
    def skeleton_indices(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._indices(edge) for edge in self.skeleton)

    @functools.cached_property
    def row_indices(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((row, self._indices(joints)) for row, joints in self.rows)

    @functools.cached_property
    def excluded_from_mean_indices(self) -> tuple[int, ...]:
        return self._indices(self.excluded_from_mean)

    @functools.cached_property
    def group_indices(self) -> dict[str, tuple[int, ...]]:
        return {group: self._indices(joints) for group, joints in self.groups}

    @functools.cached_property
    def subset_indices(self) -> dict[str, tuple[int, ...]]:
        """Named subsets, `all` first."""
        return {"all": tuple(range(len(self.joints))),
                **{subset: self._indices(joints) for subset, joints in self.subsets}}

    @functools.cached_property
    def flip_partners(self) -> tuple[int, ...]:
        """partner[i]: the joint a horizontal flip turns joint i into (i itself on the midline)."""
        partner = list(range(len(self.joints)))
        for a, b in self.flip_pair_indices:
            partner[a], partner[b] = b, a
        return tuple(partner)


def _check_layout(layout: KeypointLayout) -> None:
    """Raises LayoutError naming the first problem of a layout definition."""
    if not _NAME.match(layout.name):
        raise LayoutError(f"layout name {layout.name!r} is not a lowercase snake_case name")
    if not isinstance(layout.dataset, str) or not layout.dataset:
        raise LayoutError(f"dataset {layout.dataset!r} is not the data set's display name")
    _check_names("joints", layout.joints, must_be_names=True)
    if layout.pck_normalizer not in PCK_NORMALIZERS:
        raise LayoutError(f"pck_normalizer {layout.pck_normalizer!r} is not one of {', '.join(PCK_NORMALIZERS)}")
    if not layout.joints:
        raise LayoutError("joints is empty")
    known = set(layout.joints)
    if layout.short_names:
        if len(layout.short_names) != len(layout.joints):
            raise LayoutError(f"short_names has {len(layout.short_names)} names for {len(layout.joints)} joints")
        _check_names("short_names", layout.short_names, must_be_names=True)
    spoken = set(layout.joints) | {j.replace("_", " ") for j in layout.joints}
    for i, short in enumerate(layout.short_names):
        if short in spoken and short != layout.joints[i]:
            raise LayoutError(f"short name {short!r} of {layout.joints[i]!r} is another joint's name")
        spoken.add(short)
    for alias, joint in layout.aliases:
        _check_known(f"aliases[{alias!r}]", (joint,), known)
        if not _NAME.match(alias) or alias in spoken:
            raise LayoutError(f"alias {alias!r} is not a snake_case name or is already a joint's name")
        spoken.add(alias)
    _check_pairs(layout, known)
    for what, named in (("rows", layout.rows), ("groups", layout.groups), ("subsets", layout.subsets)):
        _check_named_joints(what, named, known)
    _check_known("excluded_from_mean", layout.excluded_from_mean, known)
    _check_names("excluded_from_mean", layout.excluded_from_mean, must_be_names=False)
    for what, named in (("groups", layout.groups), ("subsets", layout.subsets)):
        clash = [name for name, _ in named if name in spoken or name == "all" or not _NAME.match(name)]
        if clash:
            raise LayoutError(f"{what} {', '.join(map(repr, clash))}: not a snake_case name, `all`, or a joint's "
                              "name or alias")
    both = {g for g, _ in layout.groups} & {s for s, _ in layout.subsets}
    if both:
        raise LayoutError(f"{', '.join(sorted(both))} is both a group and a subset")
    _check_sigmas(layout)


def _check_names(what: str, names, must_be_names: bool) -> None:
    seen = set()
    for name in names:
        if not isinstance(name, str) or (must_be_names and not _NAME.match(name)):
            raise LayoutError(f"{what}: {name!r} is not a lowercase snake_case name")
        if name in seen:
            raise LayoutError(f"{what}: {name!r} appears twice")
        seen.add(name)


def _check_known(what: str, names, known: set[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LayoutError(f"{what}: unknown joint {', '.join(map(repr, unknown))} (joints are named canonically: "
                          f"{', '.join(sorted(known))})")


def _check_pairs(layout: KeypointLayout, known: set[str]) -> None:
    paired: set[str] = set()
    for k, (a, b) in enumerate(layout.flip_pairs):
        _check_known(f"flip_pairs[{k}]", (a, b), known)
        if a == b or {a, b} & paired:
            raise LayoutError(f"flip_pairs[{k}] [{a!r}, {b!r}]: a joint paired with itself or in two pairs")
        paired |= {a, b}
    edges: set[frozenset] = set()
    for k, (a, b) in enumerate(layout.skeleton):
        _check_known(f"skeleton[{k}]", (a, b), known)
        if a == b or frozenset((a, b)) in edges:
            raise LayoutError(f"skeleton[{k}] [{a!r}, {b!r}]: a joint joined to itself or an edge given twice")
        edges.add(frozenset((a, b)))


def _check_named_joints(what: str, named: NamedJoints, known: set[str]) -> None:
    names = [name for name, _ in named]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise LayoutError(f"{what}: {', '.join(map(repr, duplicated))} defined twice")
    for name, joints in named:
        if not name or not joints:
            raise LayoutError(f"{what}: entry {name!r} has no name or no joints")
        _check_known(f"{what}[{name!r}]", joints, known)
        _check_names(f"{what}[{name!r}]", joints, must_be_names=False)


def _check_sigmas(layout: KeypointLayout) -> None:
    sigmas = layout.oks_sigmas
    if sigmas is None:
        return
    if len(sigmas) != len(layout.joints):
        raise LayoutError(f"oks_sigmas has {len(sigmas)} sigmas for {len(layout.joints)} joints (sigma count "
                          "mismatch)")
    bad = [s for s in sigmas if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s)
           or s <= 0]
    if bad:
        raise LayoutError(f"oks_sigmas: {', '.join(map(repr, bad))} not a positive finite number")


def load_layout(path) -> KeypointLayout:
    """Reads and validates a layout file; every error names the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _layout_from_json(data)
    except (OSError, json.JSONDecodeError, LayoutError) as e:
        raise LayoutError(f"keypoint layout file {path}: {e}") from None


def _layout_from_json(data) -> KeypointLayout:
    if not isinstance(data, dict):
        raise LayoutError("the file holds no JSON object")
    missing, unknown = [k for k in _KEYS if k not in data], [k for k in data if k not in _KEYS]
    if missing or unknown:
        raise LayoutError(f"missing keys {missing}, unknown keys {unknown} (a layout has exactly: {', '.join(_KEYS)})")
    if data["format"] != FORMAT:
        raise LayoutError(f"format {data['format']!r} is not {FORMAT!r}")
    try:
        return KeypointLayout(
            name=data["name"], dataset=data["dataset"], description=data["description"],
            joints=_strings(data["joints"]), short_names=_strings(data["short_names"]),
            aliases=tuple(_mapping(data, "aliases").items()),
            flip_pairs=_pairs(data["flip_pairs"], "flip_pairs"), skeleton=_pairs(data["skeleton"], "skeleton"),
            rows=_rows(data["rows"]), excluded_from_mean=_strings(data["excluded_from_mean"]),
            groups=tuple((k, _strings(v)) for k, v in _mapping(data, "groups").items()),
            subsets=tuple((k, _strings(v)) for k, v in _mapping(data, "subsets").items()),
            oks_sigmas=None if data["oks_sigmas"] is None else tuple(data["oks_sigmas"]),
            pck_normalizer=data["pck_normalizer"])
    except LayoutError:
        raise
    except (TypeError, ValueError) as e:     # a number where a name belongs, a name where a list belongs, ...
        raise LayoutError(f"malformed entry: {e}") from None


def _strings(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LayoutError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _mapping(data: dict, key: str) -> dict:
    if not isinstance(data[key], dict):
        raise LayoutError(f"{key} must be a JSON object, got {data[key]!r}")
    return data[key]


def _pairs(value, what: str) -> Pairs:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise LayoutError(f"{what} must be a list of [joint, joint] pairs, got {value!r}")
    return tuple((a, b) for a, b in map(_strings, value))


def _rows(value) -> NamedJoints:
    if not isinstance(value, list) or not all(isinstance(r, dict) and set(r) == {"row", "joints"} for r in value):
        raise LayoutError(f'rows must be a list of {{"row": name, "joints": [...]}}, got {value!r}')
    return tuple((r["row"], _strings(r["joints"])) for r in value)


@functools.cache
def layout(name: str) -> KeypointLayout:
    """A shipped layout by name (`mpii16`, `coco17`), loaded and validated once."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {name!r}; layouts: {', '.join(LAYOUTS)}")
    loaded = load_layout(DIRECTORY / f"{name}.json")
    if loaded.name != name:
        raise LayoutError(f"keypoint layout file {DIRECTORY / f'{name}.json'}: names itself {loaded.name!r}")
    return loaded
