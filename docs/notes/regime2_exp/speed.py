"""ms per training step of several settings, interleaved in ONE process (ratios vs the first setting).

python exp2/speed.py "name:key=v,key=v" "name2:..."   (random inputs, in-memory batch, tf.function step)"""
import ast, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
from configs.demo import get_config
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net, codec_from_config
from kpt_tf.training import loop
from kpt_tf.training.trainer import PoseTrainer

def setup(spec):
    name, _, kvs = spec.partition(":")
    c = get_config()
    for kv in filter(None, kvs.split(",")):
        k, v = kv.split("="); node = c; ps = k.split(".")
        for p in ps[:-1]: node = node[p]
        try: node[ps[-1]] = ast.literal_eval(v)
        except Exception: node[ps[-1]] = v
    S = c.model.input_size; B = c.train.batch_size; sub = JointSubset.parse(c.joints)
    tr = PoseTrainer(build_net(c, sub), codec_from_config(c)); tr.compile(optimizer=loop.make_optimizer(c, 100))
    x = tf.random.uniform([B, S, S, 3], 0, 255); j = tf.random.uniform([B, len(sub), 2], 10, S - 10)
    w = tf.ones([B, len(sub)]); f = tf.function(tr.train_step)
    for _ in range(3): f((x, {"joints": j, "weights": w}))
    return name, B, lambda: float(f((x, {"joints": j, "weights": w}))["loss"])

runs = [setup(s) for s in sys.argv[1:]]
times = {n: [] for n, _, _ in runs}
for rnd in range(int(os.environ.get("ROUNDS", 6))):
    for n, B, step in runs:
        t = time.perf_counter()
        for _ in range(5): step()
        times[n].append((time.perf_counter() - t) / 5)
ref = None
for n, B, _ in runs:
    ms = 1000 * sorted(times[n])[len(times[n]) // 2]; ref = ref or ms
    print(f"{n:<28} batch {B:>2}  {ms:7.1f} ms/step  {ms / B:6.1f} ms/img  ratio {ms / ref:5.2f}", flush=True)
