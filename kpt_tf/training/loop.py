"""The training loop as a library call: `train(config, workdir)` (CLI, demo and experiments use it)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from kpt_tf import ownership
from kpt_tf import workdir as wd
from kpt_tf.data import pipeline
from kpt_tf.data.augment import AugmentConfig, check_warp
from kpt_tf.data.damaged import damaged_records, damaged_totals, describe_damaged, naming_damaged_shards
from kpt_tf.data.records import config_subset, records_subset, shard_files
from kpt_tf.data.splits import count_records
from kpt_tf.joints import JointSubset
from kpt_tf.layouts import DEFAULT_LAYOUT
from kpt_tf.models import build_net, codec_from_config, resolve_config
from kpt_tf.models.flops import flops_per_image
from kpt_tf.models.weights import trainable_parameter_count, weights_digest
from kpt_tf.trained import net_from_saved
from kpt_tf.training import callbacks as cb
from kpt_tf.training import optimizers, resume
from kpt_tf.training.distribute import (
    is_chief,
    is_multi_worker,
    make_strategy,
    output_directory,
    resolve_xla,
    task_name,
    worker_count,
    workers_agree,
)
from kpt_tf.training.history import MEAN_LOG_KEY
from kpt_tf.training.schedules import LinearWarmup
from kpt_tf.training.settings import run_settings
from kpt_tf.training.trainer import make_trainer


def augment_from_config(config) -> AugmentConfig:
    return AugmentConfig(**config.augment.to_dict())


def training_dataset(config, subset, input_context=None, skip_damaged: bool = False):
    """The training stream of a config (shuffled, augmented, repeated batches of `train.batch_size`), as `train`
    feeds it to `fit`; bench/train_step.py times the same stream."""
    t = config.train
    return pipeline.make_dataset(config.data.dir, config.data.train_split, subset, pipeline.StreamOptions(
        batch_size=int(t.batch_size), training=True, input_size=int(config.model.input_size),
        augment=augment_from_config(config), seed=int(t.seed), deterministic=bool(t.deterministic),
        shuffle_buffer=int(config.data.shuffle_buffer), skip_damaged=skip_damaged, warp=str(config.data.warp)),
        input_context=input_context)


def recorded_joints(spec: str, subset: JointSubset) -> str:
    """The `joints` a run's config.json keeps for the config's `spec`, which names `subset`: with its layout's
    prefix (`coco17:all-head`), so the saved config rebuilds the network without its records; an mpii16 spec stays
    as written (a spec without a prefix is mpii16's, and MPII runs' config.json is what it was before layouts)."""
    return spec if subset.layout.name == DEFAULT_LAYOUT else subset.qualified_name


def dry_run(config) -> dict:
    resolve_config(config)
    subset = config_subset(config)
    net = build_net(config, subset)
    net.summary(line_length=110)
    return {"params": trainable_parameter_count(net),
            "flops_per_image": int(flops_per_image(net)), "joints": list(subset.names)}


def make_schedule(config, steps_per_epoch: int):
    """The learning rate per step: a float, or a Keras schedule (step drops or cosine, each after an optional
    linear warm-up from lr/10 over `warmup_epochs`)."""
    t = config.train
    boundaries = [int(e) * steps_per_epoch for e in t.lr_drop_epochs if int(e) < int(t.epochs)]
    values = [float(t.learning_rate) * float(t.lr_drop_factor) ** i for i in range(len(boundaries) + 1)]
    schedule = (keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
                if boundaries else float(t.learning_rate))
    kind = str(t.schedule).lower()
    warmup = int(round(float(t.warmup_epochs) * steps_per_epoch))
    if kind == "cosine":
        # linear warm-up from lr/10, then a cosine down to lr x cosine_floor, reached after cosine_fraction of
        # the run and held for the rest (1.0 / 0.0: cosine to 0 at the last step)
        total = int(t.epochs) * steps_per_epoch
        end = int(round(float(t.cosine_fraction) * total))
        lr = float(t.learning_rate)
        schedule = keras.optimizers.schedules.CosineDecay(
            lr / 10 if warmup else lr, decay_steps=max(end - warmup, 1), alpha=float(t.cosine_floor),
            warmup_target=lr if warmup else None, warmup_steps=warmup)
    elif kind == "step":    # optional linear warm-up from lr/10, then the drops
        if warmup:
            schedule = LinearWarmup(schedule, warmup, float(t.learning_rate) / 10)
    else:
        raise ValueError(f"config train.schedule must be step or cosine, not {t.schedule!r}")
    return schedule


def make_optimizer(config, steps_per_epoch: int):
    t = config.train
    schedule = make_schedule(config, steps_per_epoch)
    name = str(t.optimizer).lower()
    if name == "rmsprop":   # bearpaw/pytorch-pose: RMSprop, no momentum, PyTorch's eps
        return optimizers.RMSprop(schedule, rho=0.99, epsilon=1e-8)
    if name == "adam":      # HRNet/FPD
        return optimizers.Adam(schedule)
    if name == "sgd":       # momentum 0.9: updates proportional to the gradient (Adam's and RMSprop's first steps
        return optimizers.SGD(schedule, momentum=0.9)   # are sign-like, amplifying rounding in tiny ones)
    raise ValueError(f"config train.optimizer must be rmsprop, adam or sgd, not {t.optimizer!r}")


def _steps_per_epoch(config, train_count: int) -> int:
    if int(config.train.steps_per_epoch) > 0:
        return int(config.train.steps_per_epoch)
    steps = train_count // int(config.train.batch_size)
    if steps < 1:
        raise ValueError(f"the training split has {train_count} records, fewer than one batch of "
                         f"{config.train.batch_size}")
    return steps


def _damaged_records(config) -> dict:
    """data.skip_damaged_records: the damaged shards of both splits, logged; {split: {"shards", "records_lost"}}
    (records_lost None when a damaged shard has no manifest entry to count from)."""
    out = {}
    for split in (config.data.train_split, config.data.val_split):
        found = damaged_records(config.data.dir, split)
        if found:
            print(describe_damaged(split, found), flush=True)
        out[split] = damaged_totals(found)
    return out


def require_data_dir(config) -> None:
    """Refuse a config without records (training and every experiment check it before writing anything): an empty
    data.dir, a directory that does not exist, holds no shards of the training split, or whose training or
    validation split holds no record (the converter found none of its images: training would run on nothing)."""
    if not config.data.dir:
        raise ValueError("config data.dir is empty: point it at a TFRecord directory (--config.data.dir=...) "
                         "written by data_prep.mpii_to_tfrecord or data_prep.embedded")
    for split in (config.data.train_split, config.data.val_split):
        shard_files(config.data.dir, split)
        if count_records(config.data.dir, split) == 0:
            raise ValueError(f"config data.dir {config.data.dir}: its {split!r} split holds 0 records (the converter "
                             "wrote no person there: see its summary or manifest.json for why); nothing to train on")


def check_prepared_network(config, workdir: Path, prepared_by: str) -> None:
    """A workdir prepared by kpt_tf.transfer or kpt_tf.import_checkpoint holds weights for the network of its
    config.json: the training config must build that network (model section and joints); only a resumed run's own
    config (saved when it started) may replace it."""
    if (workdir / wd.BACKUP).is_dir() or not (workdir / wd.CONFIG).is_file():
        return
    prepared = json.loads((workdir / wd.CONFIG).read_text())
    now = json.loads(config.to_json_best_effort())       # both as JSON: tuples and lists compare alike
    # model sections completed from their architecture's declaration (a workdir prepared before a key was declared
    # holds that key's default), joints compared as the subsets they name in the records' layout ("all" and its 16
    # names are one subset; another layout's are refused)
    try:
        prepared_joints = records_subset(prepared["joints"], config.data.dir)
    except ValueError as e:
        raise ValueError(f"{workdir} was prepared by {prepared_by} for another network: {e}") from None
    flat_prepared = {**resume.comparable_config({"model": prepared["model"]}),
                     **resume.flat_config({"joints": list(prepared_joints.names)})}
    flat_now = {**resume.comparable_config({"model": now["model"]}),
                **resume.flat_config({"joints": list(config_subset(config).names)})}
    changed = sorted(k for k in flat_prepared.keys() | flat_now.keys() if flat_prepared.get(k) != flat_now.get(k))
    if changed:
        raise ValueError(f"{workdir} was prepared by {prepared_by} for another network: the config differs in "
                         f"{', '.join(changed[:6])}; train it with the config it holds ({wd.CONFIG}), e.g. "
                         f"--config.{changed[0]}=..., or use a new --workdir")


def check_training_config(config) -> None:
    """Refuse, before anything is written, schedule values that would train nothing or fail later."""
    t = config.train

    def whole(name, low):
        value = t.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"config train.{name} = {value!r}: must be a whole number >= {low}")

    whole("epochs", 1)
    whole("batch_size", 1)
    whole("steps_per_epoch", 0)     # 0: one pass over the training split
    check_warp(config.data.warp, "config data.warp")
    rate = t.get("learning_rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"config train.learning_rate = {rate!r}: must be a finite number > 0")


def train(config, workdir, extra_callbacks=(), verbose: int = 1) -> dict:
    """Train per `config` into `workdir`; returns a summary with the per-epoch history (EpochScores dicts).

    verbose 1: progress inside every epoch and a line per epoch (`callbacks.Progress`); 0: silent."""
    workdir = Path(workdir)
    wd.check_training_workdir(workdir)  # before anything is written into it
    t = config.train
    subset = config_subset(config)      # an unknown joint, or another layout's, is refused before anything else
    check_training_config(config)
    require_data_dir(config)
    workdir.mkdir(parents=True, exist_ok=True)
    # The joints keep their layout, and files the config refers to (a PBN's groups_file) become inline, first: the
    # saved config.json must rebuild the network on its own, and a rerun compares configs in that form.
    config = copy.deepcopy(config)
    config.joints = recorded_joints(config.joints, subset)
    config = resolve_config(config)
    # Before any TF op: logical CPUs and the multi-worker collectives are configured at process start.
    strategy = make_strategy(int(t.num_cpu_replicas), str(t.strategy))
    # One writer per workdir; under several workers the chief alone writes it (the others write scratch copies).
    lock = ownership.owned(workdir, "kpt_tf.train") if is_chief(strategy) else contextlib.nullcontext()
    with lock:
        return _train_owned(config, workdir, strategy, extra_callbacks, verbose)


def _train_owned(config, workdir: Path, strategy, extra_callbacks, verbose: int) -> dict:
    t = config.train
    done = resume.check_rerun(config, workdir)
    if done is not None:
        if verbose:
            print(f"{workdir}: this run already finished (train_summary.json); nothing to do")
        return done
    starting = wd.starting_weights(workdir)
    if starting is not None:
        check_prepared_network(config, workdir, starting[1])
        if verbose:
            print(f"{workdir}: training continues from {starting[0].name}, written by {starting[1]}", flush=True)
    with run_settings(int(t.seed), bool(t.mixed_precision), bool(t.deterministic)):
        # The chief writes `workdir`; other workers write a scratch copy (distribute.output_directory).
        with output_directory(workdir, strategy) as out:
            return _train(config, workdir, out, strategy, extra_callbacks, verbose)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What the steps of one training run (`_train`) share, fixed before the network is built."""

    config: object
    workdir: Path          # holds the resume state
    out: Path              # every file goes here: the workdir, or a non-chief worker's scratch copy
    strategy: object
    subset: JointSubset
    codec: object
    xla: bool
    skip_damaged: bool
    steps: int             # per epoch


def _train(config, workdir: Path, out: Path, strategy, extra_callbacks, verbose: int) -> dict:
    """Train with `strategy`, resuming from `workdir`'s backup and writing every file into `out`."""
    run, damaged = _plan(config, workdir, out, strategy)
    wd.save_config(config, out)
    net, trainer, state = _build_and_resume(run)
    train_ds, val_ds = _datasets(run)
    validation, callbacks = _callbacks(run, net, val_ds, state, extra_callbacks, verbose)
    seconds = _fit(run, trainer, train_ds, callbacks, state)
    final_digest = _save_models(run, net, trainer)
    summary = _summary(run, validation, seconds, damaged)
    if is_multi_worker(strategy):
        summary["workers_agree"] = _workers_agree(run, final_digest)
    # Written last: its presence marks a finished run (workdir.is_finished).
    resume.write_text_atomically(out / wd.TRAIN_SUMMARY, json.dumps(summary, indent=1))
    resume.remove_backup(out)
    return summary


def _plan(config, workdir: Path, out: Path, strategy) -> tuple[_Run, dict | None]:
    """The run's fixed facts, refused before anything is written when they cannot train; and, with
    data.skip_damaged_records, the damaged shards of both splits (logged; None otherwise)."""
    t = config.train
    xla = resolve_xla(t.xla)
    if xla and bool(t.deterministic):
        raise ValueError(f"config train.deterministic=True with XLA (train.xla={t.xla!r}): XLA has no deterministic "
                         "MaxPool gradient (TF refuses the step); set train.xla=off or train.deterministic=False")
    subset = config_subset(config)
    codec = codec_from_config(config)
    skip_damaged = bool(config.data.skip_damaged_records)
    damaged = _damaged_records(config) if skip_damaged else None
    train_count = count_records(config.data.dir, config.data.train_split)
    if damaged:
        train_count -= damaged[config.data.train_split]["records_lost"] or 0
    steps = _steps_per_epoch(config, train_count)
    return _Run(config, workdir, out, strategy, subset, codec, xla, skip_damaged, steps), damaged


def _build_and_resume(run: _Run) -> tuple:
    """(network, trainer, resume state): the network from the workdir's starting weights (or new), its trainer
    compiled, both built under the strategy, then the workdir's backup (if any) restored into them."""
    config = run.config
    # Synchronized BN needs cross-replica communication inside the forward pass, which the XLA
    # per-replica function cannot contain; the trainer averages moving statistics instead (trainer.py).
    synchronized = run.strategy.num_replicas_in_sync > 1 and not run.xla
    with run.strategy.scope():
        starting = wd.starting_weights(run.workdir)
        if starting is not None:
            net = net_from_saved(config, run.subset, synchronized, starting[0])
        else:
            net = build_net(config, run.subset, synchronized_bn=synchronized)
        trainer = make_trainer(config, net, run.codec, run.xla)
        trainer.compile(optimizer=make_optimizer(config, run.steps))
        # Model and optimizer built before fit: resume.resume restores the backup into their variables.
        size = int(config.model.input_size)
        trainer(tf.zeros([1, size, size, 3]))
        trainer.optimizer.build(net.trainable_variables)
        state = resume.resume(trainer, run.workdir, clean_csv=is_chief(run.strategy))
    return net, trainer, state


def _datasets(run: _Run) -> tuple:
    """(the training stream `fit` reads, the validation batches with their evaluation fields)."""
    config = run.config

    def train_dataset(input_context=None):
        return training_dataset(config, run.subset, input_context=input_context, skip_damaged=run.skip_damaged)

    # Several workers: each builds its own input pipeline and keeps its share of the one stream of elements
    # (decoding only its own crops); on one machine `fit` splits each global batch across the replicas.
    train_ds = (run.strategy.distribute_datasets_from_function(train_dataset) if is_multi_worker(run.strategy)
                else train_dataset())
    val_ds = pipeline.make_dataset(config.data.dir, config.data.val_split, run.subset, pipeline.StreamOptions(
        batch_size=max(int(config.train.batch_size), 8), training=False, input_size=int(config.model.input_size),
        with_meta=True, skip_damaged=run.skip_damaged))
    return train_ds, val_ds


def _callbacks(run: _Run, net, val_ds, state: dict, extra_callbacks, verbose: int) -> tuple:
    """(the validation callback, every callback of `fit` in its order)."""
    t, out = run.config.train, run.out
    validation = cb.ValidationPCKh(net, val_ds, run.codec, run.subset, flip_test=bool(t.flip_test),
                                   max_people=int(run.config.data.val_max_people),
                                   log_dir=str(out / wd.TENSORBOARD),
                                   skeleton_images=int(t.skeleton_images))
    callbacks = [
        validation,  # first: the callbacks below read the PCKh it adds to the epoch logs
        cb.StopOnNonFiniteLoss(run.steps),   # before any callback that writes: it stops inside the step
        keras.callbacks.CSVLogger(str(out / wd.METRICS_CSV), append=True),
        # After the CSV row: its commit marks the epoch done (resume.py).
        resume.RunCheckpoints(out, MEAN_LOG_KEY, validation, state),
        keras.callbacks.TensorBoard(str(out / wd.TENSORBOARD), write_graph=False, profile_batch=0),
        *extra_callbacks,
    ]
    if verbose:
        callbacks.append(cb.Progress(int(t.epochs), run.steps, metric=run.subset.layout.pck_label))
    return validation, callbacks


def _fit(run: _Run, trainer, train_ds, callbacks, state: dict) -> float:
    """`fit` from the resumed epoch to the last; -> its seconds. A diverged run stops naming what it kept."""
    config = run.config
    started = time.time()
    try:
        with naming_damaged_shards(config.data.dir, config.data.train_split, config.data.val_split):
            trainer.fit(train_ds, epochs=int(config.train.epochs), steps_per_epoch=run.steps, callbacks=callbacks,
                        shuffle=False, verbose=0, initial_epoch=int(state["epoch"]))
    except cb.TrainingDiverged as e:
        kept = resume.read_state(run.workdir)
        kept = (f"the backup of epoch {kept['epoch']} ({wd.BACKUP}/) and the best checkpoint "
                f"({wd.BEST_WEIGHTS}, val PCKh {kept['best']})" if kept else "nothing: no epoch had completed")
        raise cb.TrainingDiverged(f"{run.workdir}: {e}. Kept {kept}; {wd.BEST_MODEL} and {wd.FINAL_MODEL} were not "
                                  "written. Try a lower train.learning_rate in a new --workdir.") from None
    return time.time() - started


def _save_models(run: _Run, net, trainer) -> str | None:
    """final.keras, then best.keras (the best epoch's weights, when an epoch was kept as best); -> the digest of the
    final weights under several workers, else None."""
    resume.replace_atomically(net.save, run.out / wd.FINAL_MODEL)
    # The final weights, before `best` replaces them: a non-chief resumed after the best epoch has no best file of
    # its own (its scratch directory is new), so only the final weights are comparable across workers.
    final_digest = weights_digest(net) if is_multi_worker(run.strategy) else None
    if resume.best_is_last(run.out):
        # the last epoch was the best (the usual case): best.keras is a copy of final.keras, not a second save
        resume.replace_atomically(lambda tmp: shutil.copyfile(run.out / wd.FINAL_MODEL, tmp), run.out / wd.BEST_MODEL)
        return final_digest
    best = run.out / wd.BEST_WEIGHTS
    if best.exists():
        trainer.load_weights(best)
    resume.replace_atomically(net.save, run.out / wd.BEST_MODEL)
    return final_digest


def _summary(run: _Run, validation, seconds: float, damaged: dict | None) -> dict:
    """train_summary.json's content (the multi-worker check adds `workers_agree`)."""
    t, strategy = run.config.train, run.strategy
    summary = {
        "workdir": str(run.workdir), "joints": list(run.subset.names), "epochs": int(t.epochs),
        "steps_per_epoch": run.steps, "replicas": strategy.num_replicas_in_sync, "workers": worker_count(strategy),
        "xla": run.xla,
        "trainer": str(t.trainer), "seconds": round(seconds, 1),
        "best_val_pckh_mean": validation.best, "final_val_pckh_mean": validation.last_mean,
        "history": [h.to_dict() for h in validation.history],
    }
    if damaged is not None:
        summary["damaged_records"] = damaged
    return summary


def _workers_agree(run: _Run, final_digest: str) -> bool:
    """Every worker must hold the same final weights after a synchronous run: checked (and printed, so anyone can
    compare) once the models are written; the check is also a barrier, so the chief (which hosts the cluster's
    coordination service) stays up until every worker is done."""
    agree = workers_agree(run.strategy, final_digest)
    print(f"{task_name(run.strategy)}: final weights sha256 {final_digest}"
          + ("" if agree else " -- WORKERS DISAGREE: the run was not synchronous"), flush=True)
    return agree
