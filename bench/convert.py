"""Conversion throughput: data_prep.mpii_to_tfrecord vs a naive one-process, decode-per-person loop.

Renders figures at the real poses, centres, scales and image sizes of the first `--num_people` people of
the real annotation file (data_prep.synth --from_annotations), so images have MPII's sizes and
people per image. MPII's own JPEGs average about 0.5 MB (12.9 GB for 24,987 images) while rendered
figures compress to ~0.2 MB, and JPEG decoding time grows with the compressed size; `--photo_noise`
adds sensor-like noise and re-encodes the images so that they weigh what real MPII images weigh.

The rendered set is then taken `--repeat` times (images hard-linked under new names, decoded separately),
so that worker start-up is amortised as in a full conversion, and in the same run, on the same files, it
times
  (a) the converter (grouped decoding, reduced decoding of large people) with `--num_workers` processes,
      and with one process (in-process, no workers);
  (a') the converter without reduced decoding;
  (b) a naive loop: for every person, read and decode the full image, warp the same crop, JPEG-encode,
      serialize with the same schema, write one TFRecord;
and prints people/s, the speed-up, CPU time per person and the projected time for all 25,204 people of
MPII. It also measures what reduced decoding does to the crops: PSNR of each crop against an
anti-aliased reference crop (Gaussian prefilter matched to the downsampling, full-resolution decode).

    .venv/bin/python bench/convert.py                    # 300 people x 8, all cores
    .venv/bin/python bench/convert.py --num_people 600 --repeat 4 --num_workers 2
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

import kpt_tf  # noqa: F401  (TF's start-up environment, set before anything here imports TF: kpt_tf/__init__.py)

REPO = Path(__file__).resolve().parents[1]

MPII_PEOPLE = 25_204
DEFAULT_ANNOTATIONS = REPO.parent / "shared" / "mpii" / "mpii_annotations.json.gz"

FLAGS = flags.FLAGS
flags.DEFINE_string("annotations", str(DEFAULT_ANNOTATIONS), "mpii_annotations.json[.gz] whose poses are rendered.")
flags.DEFINE_integer("num_people", 300, "People (first of the file) to render and convert.")
flags.DEFINE_integer("repeat", 8, "Convert the rendered people this many times (images hard-linked under "
                     "new names, so each copy is decoded on its own): amortises start-up as a full run does.")
flags.DEFINE_integer("num_workers", len(os.sched_getaffinity(0)), "Converter processes.")
flags.DEFINE_float("photo_noise", 14.0, "Std of the noise added before re-encoding the images (0 = keep the "
                   "rendered JPEGs): makes their size and decode time like real MPII photos.")
flags.DEFINE_integer("crop_size", 384, "Crop size (the converter's default).")
flags.DEFINE_float("crop_margin", 1.5, "Crop margin (the converter's default).")
flags.DEFINE_string("work_dir", "", "Keep the rendered data and records here, and reuse rendered images of an "
                    "earlier run with the same settings (default: a temp dir, removed).")


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the converter's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def photo_like(images_dir: Path, noise_std: float, seed: int = 0) -> float:
    """Add noise and re-encode every image at quality 95; -> mean file size in MB."""
    rng = np.random.default_rng(seed)
    sizes = []
    for path in sorted(images_dir.glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if noise_std > 0:
            noisy = image.astype(np.float32) + rng.normal(0, noise_std, image.shape).astype(np.float32)
            image = np.clip(noisy, 0, 255).astype(np.uint8)
            cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        sizes.append(path.stat().st_size)
    return float(np.mean(sizes)) / 1e6


def repeated(synth: Path, target: Path, times: int) -> tuple[Path, Path]:
    """The rendered data set `times` over: records copied with renamed images (hard links) -> (ann, images)."""
    if times <= 1:
        return synth / "annotations.json", synth / "images"
    shutil.rmtree(target, ignore_errors=True)
    (target / "images").mkdir(parents=True)
    records = json.loads((synth / "annotations.json").read_text())
    out = []
    for k in range(times):
        for name in sorted({r["img_paths"] for r in records}):
            os.link(synth / "images" / name, target / "images" / f"r{k}_{name}")
        out.extend(dict(r, img_paths=f"r{k}_{r['img_paths']}") for r in records)
    (target / "annotations.json").write_text(json.dumps(out))
    return target / "annotations.json", target / "images"


def naive_convert(annotations: Path, images_dir: Path, output_file: Path, crop_size: int, margin: float) -> int:
    """One process, one full decode per person, same crop/encoding/schema as the converter."""
    import tensorflow as tf

    from data_prep.crops import CropSettings, convert_image, crop_job, decode_factor, skip_reason
    from kpt_tf.data.schema import encode_example
    from kpt_tf.mpii import read_annotations

    cv2.setNumThreads(1)
    settings = CropSettings(crop_size, margin, 95, reduced_decode=False)
    written = 0
    with tf.io.TFRecordWriter(str(output_file)) as writer:
        for person in read_annotations(annotations):
            if skip_reason(person) is not None:
                continue
            # convert_image with a single person decodes the whole image for that person alone.
            job = crop_job(person)
            for _, record, _ in convert_image((str(images_dir / person.image), [job], settings,
                                               decode_factor([job], settings))):
                if record is not None:
                    writer.write(encode_example(record))
                    written += 1
    return written


def crop_fidelity(records_dir: Path, images_dir: Path, crop_size: int, limit: int = 120) -> dict:
    """PSNR of the stored crops against a reference crop of the full-resolution image, Gaussian-prefiltered
    for the crop's downsampling (what an ideal resampler would produce)."""
    import tensorflow as tf

    from kpt_tf import geometry
    from kpt_tf.data.schema import parse_example_numpy, shard_pattern

    files = sorted(str(p) for p in records_dir.glob(shard_pattern("train")))
    psnrs, factors = [], []
    images: dict[str, np.ndarray] = {}
    for serialized in tf.data.TFRecordDataset(files).take(limit):
        r = parse_example_numpy(serialized.numpy())
        name = r["image/id"].decode()
        if name not in images:
            images = {name: cv2.imread(str(images_dir / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)}
        to_crop = geometry.invert_affine(r["crop/to_image"])
        k = 1.0 / np.sqrt(abs(np.linalg.det(to_crop[:, :2])))  # source px per crop px
        source = images[name]
        if k > 1:
            source = cv2.GaussianBlur(source, (0, 0), 0.5 * np.sqrt(k * k - 1))
        reference = cv2.warpAffine(source, to_crop, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT)
        crop = cv2.cvtColor(r["image"], cv2.COLOR_RGB2BGR).astype(np.float64)
        mse = np.mean((crop - reference.astype(np.float64)) ** 2)
        psnrs.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-9)))
        factors.append(k)
    factors = np.array(factors)
    psnrs = np.array(psnrs)
    return {"psnr_mean": float(psnrs.mean()), "psnr_min": float(psnrs.min()),
            "psnr_k_ge_2": float(psnrs[factors >= 2].mean()) if (factors >= 2).any() else float("nan"),
            "share_k_ge_2": float((factors >= 2).mean()), "n": int(psnrs.size)}


def main(argv):
    del argv
    annotations = Path(FLAGS.annotations)
    if not annotations.is_file():
        raise app.UsageError(f"--annotations {annotations} not found (the real file lives in ../shared/mpii/)")
    from data_prep.mpii_to_tfrecord import convert

    work = Path(FLAGS.work_dir) if FLAGS.work_dir else Path(tempfile.mkdtemp(prefix="bench_convert_"))
    try:
        synth = work / "synth"
        stamp = synth / "bench_render.json"
        wanted = json.dumps({"annotations": str(annotations), "num_people": FLAGS.num_people,
                             "photo_noise": FLAGS.photo_noise})
        if stamp.is_file() and stamp.read_text() == wanted:
            print(f"reusing the images rendered in {synth}")
        else:
            shutil.rmtree(synth, ignore_errors=True)
            t = time.perf_counter()
            # The generator is run as a program: importing it would define absl flags that clash with ours.
            subprocess.run([sys.executable, "-m", "data_prep.synth", "--output_dir", str(synth),
                            "--from_annotations", str(annotations), "--max_people", str(FLAGS.num_people),
                            "--num_workers", str(FLAGS.num_workers)], check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            mean_mb = photo_like(synth / "images", FLAGS.photo_noise)
            num_images = len(list((synth / "images").glob("*.jpg")))
            print(f"rendered the first {FLAGS.num_people} people of {annotations.name} in {num_images} images "
                  f"at MPII sizes ({mean_mb:.2f} MB per JPEG on average) in {time.perf_counter() - t:.1f} s")
            stamp.write_text(wanted)
        ann, images = repeated(synth, work / "repeated", FLAGS.repeat)
        # Read the files once so that no timed run pays for a cold page cache.
        for p in images.iterdir():
            p.read_bytes()

        import tensorflow  # noqa: F401  (imported once, untimed: every method below serializes with it)

        rows = []
        variants = [("converter", FLAGS.num_workers, True), ("converter", 1, True),
                    ("converter, no reduced decode", FLAGS.num_workers, False)]
        for label, workers, reduced in variants:
            out = work / f"records_{workers}_{int(reduced)}"
            shutil.rmtree(out, ignore_errors=True)
            t, cpu = time.perf_counter(), cpu_seconds()
            manifest = convert(ann, images, out, num_shards={"train": 2, "val": 1}, num_workers=workers,
                               crop_size=FLAGS.crop_size, crop_margin=FLAGS.crop_margin,
                               reduced_decode=reduced, progress=False)
            seconds, cpu = time.perf_counter() - t, cpu_seconds() - cpu
            written = sum(s["written"] for s in manifest["splits"].values())
            rows.append((f"{label} ({workers} proc)", written, seconds, cpu, workers))
        t, cpu = time.perf_counter(), cpu_seconds()
        written = naive_convert(ann, images, work / "naive.tfrecord", FLAGS.crop_size, FLAGS.crop_margin)
        rows.append(("naive loop (1 proc, decode per person)", written, time.perf_counter() - t,
                     cpu_seconds() - cpu, 1))

        naive_rate = rows[-1][1] / rows[-1][2]
        load = os.getloadavg()[0]
        print(f"\n{'method':42s} {'people':>6s} {'wall s':>7s} {'people/s':>9s} {'x naive':>8s} "
              f"{'all MPII':>9s} {'CPU ms/person':>14s} {'all MPII, 2 free cores':>23s}")
        for label, n, seconds, cpu, workers in rows:
            rate = n / seconds
            workers = min(workers, 2)
            print(f"{label:42s} {n:6d} {seconds:7.2f} {rate:9.1f} {rate / naive_rate:8.2f} "
                  f"{MPII_PEOPLE / rate / 60:7.1f} m {1000 * cpu / n:14.2f} "
                  f"{MPII_PEOPLE * cpu / n / workers / 60:21.1f} m")
        print(f"(wall time end to end: annotation reading, worker start-up and shard hashing included, the "
              f"TensorFlow import not; 'all MPII' = 25,204 people at the measured rate. Load average "
              f"{load:.1f} on {os.cpu_count()} CPUs: on a shared machine the CPU-time projection, CPU per "
              f"person x 25,204 / cores used, is the fairer figure.)")

        for label, out in (("reduced decode", work / f"records_{FLAGS.num_workers}_1"),
                           ("full decode", work / f"records_{FLAGS.num_workers}_0")):
            f = crop_fidelity(out, images, FLAGS.crop_size)
            print(f"crop PSNR vs anti-aliased reference, {label:14s}: mean {f['psnr_mean']:.2f} dB, "
                  f"min {f['psnr_min']:.2f} dB, crops downsampled >= 2x ({100 * f['share_k_ge_2']:.0f}%): "
                  f"{f['psnr_k_ge_2']:.2f} dB  [{f['n']} crops]")
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.convert")
