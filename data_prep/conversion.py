"""What every converter shares once it holds its people: the settings' checks, the shard counts, a rerun that keeps
the finished shards made from the same inputs, the manifest, and the summary printed at the end.

A converter (data_prep.mpii_to_tfrecord, data_prep.coco_to_tfrecord) reads its annotation format into
`PersonAnnotation`s by split and states what decides the bytes of its shards (`content`); `write_records` does the
rest. The manifest names the records' keypoint layout when it is not MPII's (kpt_tf.data.manifest).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Sequence

from data_prep.crops import CropSettings
from data_prep.shards import plan_shards, write_json_atomic, write_shards
from kpt_tf import layouts
from kpt_tf.data import manifest as mf
from kpt_tf.data.manifest import MANIFEST_NAME
from kpt_tf.mpii.person import SPLITS, PersonAnnotation

DEFAULT_NUM_SHARDS = {"train": 8, "val": 2, "test": 4}
# The content key of converters that write one split per run: {split: what decides that split's shards}.
SPLIT_CONTENT = "splits"


class ConversionError(ValueError):
    """A fatal problem with the converter's inputs or flags (reported without a traceback)."""


def parse_num_shards(value, splits: Sequence[str]) -> dict[str, int]:
    """'8' (every split), 'train=8,val=2', an int or a dict -> {split: count >= 1} for `splits`."""
    if isinstance(value, dict):
        table = dict(value)
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        table = {s: int(value) for s in splits}
    else:
        table = {}
        for item in str(value).split(","):
            if not item.strip():
                continue
            name, sep, count = item.partition("=")
            if not sep or not count.strip().lstrip("-").isdigit():
                raise ConversionError(f"--num_shards {value!r}: expected an integer or 'split=count,...'")
            table[name.strip()] = int(count)
    for split in splits:
        table.setdefault(split, DEFAULT_NUM_SHARDS.get(split, 1))
    if bad := {s: n for s, n in table.items() if n < 1}:
        raise ConversionError(f"--num_shards: shard counts must be >= 1, got {bad}")
    if unknown := sorted(set(table) - set(SPLITS)):
        raise ConversionError(f"--num_shards names unknown splits {unknown} (known: {', '.join(SPLITS)})")
    return {s: table[s] for s in splits}


def check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality) -> None:
    if not 8 <= crop_size <= 4096:
        raise ConversionError(f"--crop_size {crop_size}: expected 8..4096 pixels")
    if not (math.isfinite(crop_margin) and 1.0 <= crop_margin <= 4.0):
        raise ConversionError(f"--crop_margin {crop_margin}: expected 1.0..4.0 person boxes "
                              "(the crop must contain the person box)")
    if max_people < 0:
        raise ConversionError(f"--max_people {max_people}: expected >= 0 (0 = all)")
    if num_workers < 1:
        raise ConversionError(f"--num_workers {num_workers}: expected >= 1")
    if not 1 <= jpeg_quality <= 100:
        raise ConversionError(f"--jpeg_quality {jpeg_quality}: expected 1..100")


def check_images_present(selected: dict[str, list[PersonAnnotation]], images_dir: Path, annotations: Path) -> None:
    """Refuses an --images_dir holding none of the images the selected people name (the wrong directory)."""
    images = list(dict.fromkeys(p.image for group in selected.values() for p in group))
    if not any((images_dir / image).is_file() for image in images):
        raise ConversionError(f"--images_dir {images_dir}: none of the {len(images)} images the annotations name "
                              f"is there (e.g. {images[0]}); is it the right directory?")


def write_records(selected: dict[str, list[PersonAnnotation]], images_dir: Path, output_dir: Path,
                  settings: CropSettings, num_shards: dict[str, int], flag_values: dict, content: dict, *,
                  layout=None, num_workers: int = 1, progress: bool = True, program: str = "convert") -> dict:
    """Write `selected`'s people as shards of `output_dir`, keeping the shards of a previous run with the same
    `content` that are complete and intact; -> the manifest (written after every shard and at the end).
    `layout`: the records' KeypointLayout; None for MPII's (its manifest names no layout, as before layouts)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = output_dir / MANIFEST_NAME
    entries, all_num_shards = _previous_entries(manifest_path, content, num_shards)
    all_num_shards.update(num_shards)
    plans = plan_shards(selected, num_shards)
    reusable = set()
    for plan in plans:
        entry = entries.get(plan.file)
        if (entry and entry[mf.SHARD_READ] == len(plan.people) and (output_dir / plan.file).is_file()
                and mf.sha256_of_file(output_dir / plan.file) == entry[mf.SHARD_SHA256]):
            reusable.add(plan.file)
        else:
            entries.pop(plan.file, None)
    pending = [p for p in plans if p.file not in reusable]
    if reusable:
        print(f"{program}: {len(reusable)} complete shard(s) kept from a previous run, {len(pending)} to write",
              file=sys.stderr)

    def save(complete: bool) -> dict:
        manifest = mf.build_manifest(entries, all_num_shards, flag_values, content, complete, SPLITS,
                                     layout=None if layout is None else layout.name)
        write_json_atomic(manifest_path, manifest)
        return manifest

    save(complete=not pending)
    if pending:
        write_shards(pending, plans, output_dir, images_dir, settings, num_workers, progress, entries, save,
                     layout or layouts.layout(layouts.DEFAULT_LAYOUT))
    return save(complete=True)


def _previous_entries(manifest_path: Path, content: dict, num_shards: dict[str, int]):
    """Shard entries of a previous run in the same output_dir, refusing one made from other inputs."""
    if not manifest_path.is_file():
        return {}, {}
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = mf.entries_from_manifest(previous)
        previous_content = previous[mf.CONTENT]
        previous_shards = {s: v.get(mf.SPLIT_NUM_SHARDS) for s, v in previous.get(mf.SPLITS, {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"{manifest_path} exists but is not a manifest of this converter ({e!r}); "
                              "use an empty --output_dir") from e
    if changed := changed_content(previous_content, content):
        raise ConversionError(f"--output_dir {manifest_path.parent} holds records made with other inputs or "
                              f"settings (differs in: {', '.join(changed)}); use a new --output_dir or "
                              "empty this one")
    for split, count in num_shards.items():
        if previous_shards.get(split) not in (None, count):
            raise ConversionError(f"--output_dir {manifest_path.parent} holds split {split!r} in "
                                  f"{previous_shards[split]} shards, not {count}; use a new --output_dir")
    return entries, {s: n for s, n in previous_shards.items() if n is not None}


def run_converter(define_flags, main, program: str) -> None:
    """A converter's program start: SIGTERM unwinds like Ctrl-C (unfinished shards are abandoned as .tmp files, the
    workers stopped, a rerun of the same command finishes), its flags defined, `main` run through kpt_tf.cli."""
    import signal

    from kpt_tf import cli

    def exit_on_sigterm(signum, frame):
        raise SystemExit(f"{program}: stopped by signal {signum}; rerun the same command to finish")

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    define_flags()
    cli.run(main, program)


def changed_content(previous: dict, content: dict) -> list[str]:
    """The keys of `content` that differ from a previous run's. Under `SPLIT_CONTENT` (converters that read one
    split per run, like COCO's) a run may add a split; a split both runs name must be made from the same inputs."""
    changed = sorted(k for k in set(content) | set(previous)
                     if k != SPLIT_CONTENT and content.get(k) != previous.get(k))
    before, now = previous.get(SPLIT_CONTENT) or {}, content.get(SPLIT_CONTENT) or {}
    return changed + sorted(f"{SPLIT_CONTENT}.{s}" for s in set(before) | set(now)
                            if s in before and before[s] != now.get(s))


def print_summary(manifest: dict, output_dir) -> None:
    """The end of a conversion: per split counts, one line per skip reason, empty-split warnings; exits non-zero
    (ConversionError) when no person at all could be converted."""
    for split, counts in manifest[mf.SPLITS].items():
        print(f"{split}: read {counts[mf.SPLIT_READ]}, written {counts[mf.SPLIT_WRITTEN]}, skipped "
              f"{counts[mf.SPLIT_SKIPPED]} ({counts[mf.SPLIT_NUM_SHARDS]} shards)")
    for line in skip_summary(manifest[mf.SKIPPED]):
        print(line)
    for line in empty_split_warnings(manifest):
        print(line, file=sys.stderr)
    print(f"manifest: {Path(output_dir) / MANIFEST_NAME} (every skipped person, with the reason)")
    if not any(c[mf.SPLIT_WRITTEN] for c in manifest[mf.SPLITS].values()):
        raise ConversionError("no person could be converted (see the reasons above)")


def skip_summary(skipped: Sequence[dict], examples: int = 3) -> list[str]:
    """One line per skip reason, however many people it holds: how many people of how many images, and the
    first few (25,199 people of images absent from --images_dir are one line, not 25,199)."""
    reasons: dict[str, list] = {}
    for s in skipped:
        reasons.setdefault(s[mf.SKIP_REASON], []).append(s)
    lines = []
    for reason, who in sorted(reasons.items()):
        images = list(dict.fromkeys(s[mf.SKIP_IMAGE] for s in who))
        shown = ", ".join(f"{s[mf.SKIP_IMAGE]} person {s[mf.SKIP_PERSON]}" for s in who[:examples])
        lines.append(f"  skipped, {reason}: {len(who)} people of {len(images)} images "
                     f"({shown}{', ...' if len(who) > examples else ''})")
    return lines


def empty_split_warnings(manifest: dict) -> list[str]:
    """A line for each split that read people but wrote none, with the reason most of them were skipped (training
    on such a split would run on nothing; kpt_tf.train refuses it)."""
    lines = []
    for split, counts in manifest[mf.SPLITS].items():
        if counts[mf.SPLIT_READ] and not counts[mf.SPLIT_WRITTEN]:
            reasons: dict[str, int] = {}
            for s in manifest[mf.SKIPPED]:
                if s[mf.SKIP_SPLIT] == split:
                    reasons[s[mf.SKIP_REASON]] = reasons.get(s[mf.SKIP_REASON], 0) + 1
            reason, count = max(reasons.items(), key=lambda item: item[1]) if reasons else ("unknown", 0)
            lines.append(f"warning: split {split!r} wrote no person: {reason} for {count:,} of its "
                         f"{counts[mf.SPLIT_READ]:,} people")
    return lines
