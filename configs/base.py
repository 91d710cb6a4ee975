"""Defaults shared by every training config (ml_collections). Each config file starts from this one."""

import ml_collections

from kpt_tf.data.augment import TRAINING_WARP
from kpt_tf.models import DEFAULT_ARCHITECTURE, model_section


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "base"
    # Joint subset of the heads: a named subset (all, upper, lower, left, right, arms, legs, torso_head)
    # or a comma list of joint names (kpt_tf.joints).
    c.joints = "all"

    # model.name picks the architecture (kpt_tf.models registry); the other keys, and their defaults, are the ones
    # that architecture declares (e.g. kpt_tf/models/hourglass.py SECTION). Another architecture's section:
    # `c.model = model_section("pbn", like=c.model, ...)` (configs/pbn_hg_mpii.py).
    c.model = model_section(DEFAULT_ARCHITECTURE)
    # Gaussian targets: sigma 1 output px for the hourglass (Newell; bearpaw), 2 for HRNet/FPD.
    c.codec = ml_collections.ConfigDict(dict(sigma=1.0))

    c.data = ml_collections.ConfigDict(dict(
        dir="",                      # TFRecord directory written by data_prep.mpii_to_tfrecord
        train_split="train",
        val_split="val",
        shuffle_buffer=2048,
        val_max_people=0,            # 0 = the whole validation split every epoch
        # True: a damaged shard's records from the first damaged one on are skipped and counted (log and
        # train_summary.json "damaged_records") instead of stopping the run with the shard's name
        skip_damaged_records=False,
        # how the training stream resamples a stored crop onto the augmented input: cv2 (OpenCV once per batch, the
        # cheapest), xla or projective_transform (kpt_tf.data.augment.WARPS); evaluation always uses xla
        warp=TRAINING_WARP,
    ))
    c.augment = ml_collections.ConfigDict(dict(
        rotation_deg=30.0, rotation_prob=0.6, scale_min=0.75, scale_max=1.25, flip=True,
        color_min=0.8, color_max=1.2))

    c.train = ml_collections.ConfigDict(dict(
        batch_size=6,                # global batch (split over replicas)
        epochs=100,
        steps_per_epoch=0,           # 0 = one pass over the training split
        trainer="pose",              # kpt_tf.training.trainer registry: what the compiled step computes
        optimizer="rmsprop",          # rmsprop (bearpaw), adam (HRNet, FPD) or sgd (momentum 0.9)
        learning_rate=2.5e-4,
        lr_drop_epochs=(60, 90),     # step schedule (bearpaw/pytorch-pose): x lr_drop_factor at each
        lr_drop_factor=0.1,
        schedule="step",             # step: lr_drop_epochs; cosine: warm-up, then cosine decay to 0
        cosine_fraction=1.0,         # cosine: the decay ends after this fraction of the run ...
        cosine_floor=0.0,            # ... at learning_rate x this, held to the end
        warmup_epochs=0.0,           # linear warm-up from lr/10 over this many epochs (step or cosine)
        foreground_weight=0.0,       # heatmap MSE pixel weight 1 + this * target (0 = plain MSE; losses.py)
        mixed_precision=False,
        xla="auto",                  # auto = on for GPU, off for CPU (XLA measured 0.91x on CPU, BUILD_NOTES)
        num_cpu_replicas=0,          # >1: MirroredStrategy over that many logical CPUs (testing)
        strategy="auto",             # auto: MirroredStrategy on this machine; multi_worker: MultiWorkerMirrored-
                                     # Strategy over the TF_CONFIG cluster (kpt_tf/training/distribute.py)
        seed=0,
        deterministic=False,
        flip_test=True,              # validation with flip test (needs a flip-closed subset)
        skeleton_images=4,           # validation crops drawn into TensorBoard each epoch
    ))
    # Locked: a typo in a config file (`c.train.epocs = 3`) is refused where it is written, naming the key,
    # instead of adding a key nothing reads. A config that adds a section of its own (an experiment, a model's
    # keys) does so inside `with c.unlocked():`. config_flags locks the loaded config as well (command-line
    # overrides of unknown keys are refused there).
    c.lock()
    return c


def add_section(c: ml_collections.ConfigDict, name: str, fields: dict) -> None:
    """Adds a section a config of its own needs (`experiment`, `distill`, `quick`) to a locked config; the new
    section is locked like the rest."""
    with c.unlocked():
        c[name] = ml_collections.ConfigDict(fields)
