#!/bin/bash
# probes: all joints, d12k, 5 epochs x 100 steps (500 steps), Adam cosine 1 warm-up epoch
cd /work/regime
export PYTHONPATH=/work/regime TF_CPP_MIN_LOG_LEVEL=2
PY=/work/main/.venv/bin/python
D=runs/d12k/records
C="train.optimizer=adam train.learning_rate=3e-3 train.schedule=cosine train.warmup_epochs=1.0 train.epochs=5 train.steps_per_epoch=100"
NOAUG="augment.rotation_prob=0.0 augment.scale_min=1.0 augment.scale_max=1.0 augment.flip=False augment.color_min=1.0 augment.color_max=1.0"
$PY exp2/run.py p0_base $D $C
$PY exp2/run.py p1_noaug $D $C $NOAUG
