#!/bin/bash
cd /work/regime
export PYTHONPATH=/work/regime TF_CPP_MIN_LOG_LEVEL=2
PY=/work/main/.venv/bin/python
D=runs/d12k/records
C="train.optimizer=adam train.schedule=cosine train.warmup_epochs=1.0 train.epochs=5 train.steps_per_epoch=100"
$PY exp2/run.py p5_fg10_lr1e-2 $D $C train.learning_rate=1e-2 train.foreground_weight=10.0
$PY exp2/run.py p6_fg30 $D $C train.learning_rate=3e-3 train.foreground_weight=30.0
