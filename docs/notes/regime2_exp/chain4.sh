#!/bin/bash
cd /work/regime
export PYTHONPATH=/work/regime TF_CPP_MIN_LOG_LEVEL=2
PY=/work/main/.venv/bin/python
while kill -0 11079 2>/dev/null; do sleep 5; done
echo "demo start $(date +%T)"
/usr/bin/time -v $PY -m tools.demo --workdir runs/regime2/demo > runs/regime2/demo.log 2>&1
echo "demo end $(date +%T)"
echo "bench start $(date +%T)"
$PY exp2/run.py b1_lower_bench runs/d12k/records joints=lower train.epochs=20 train.steps_per_epoch=100 train.skeleton_images=0
echo "bench end $(date +%T)"
