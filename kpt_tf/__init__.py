"""kpt_tf: single-person pose estimation with TensorFlow/Keras.

Importing the package sets TensorFlow's start-up environment, before any module here imports TensorFlow: every
`python -m kpt_tf.X` program imports this file first, and so does anything else that imports kpt_tf before
TensorFlow. A value already in the environment always wins. What is silenced, and what cannot be, is in
BUILD_NOTES ("Start-up lines of TensorFlow").
"""

import os as _os
import sys as _sys


def _cuda_driver_loads() -> bool:
    """Whether the CUDA driver library loads, as TensorFlow's own CUDA probe would load it (dlopen by soname)."""
    import ctypes

    try:
        handle = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    import _ctypes

    _ctypes.dlclose(handle._handle)     # only asked; TensorFlow loads it again itself
    return True


def _quiet_tensorflow_start(environ=_os.environ) -> None:
    # TF's C++ INFO and WARNING lines (CPU instruction notes and the like) are left out; its ERROR lines, and every
    # Python warning and error, are not.
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A CUDA build of TF calls cuInit through its stub even where the CUDA driver is missing, and logs that failure as
    # an ERROR line on every start. Without the driver the GPU device can never exist, so it is left out of the
    # device list (CPU and XLA_CPU stay: XLA's CPU device when TF_XLA_FLAGS asks for it), which skips the probe. Not
    # where another GPU kind may be present: AMD's (/dev/kfd; ROCm builds register "GPU" too) and pluggable devices
    # (a site-packages/tensorflow-plugins directory: Intel, Apple).
    if ("TF_ENABLED_DEVICE_TYPES" in environ or not _sys.platform.startswith("linux")
            or _os.path.exists("/dev/kfd")
            or any(_os.path.isdir(_os.path.join(p, "tensorflow-plugins")) for p in _sys.path if p)
            or _cuda_driver_loads()):
        return
    environ["TF_ENABLED_DEVICE_TYPES"] = "CPU,XLA_CPU"


_quiet_tensorflow_start()
