"""What the MPII and the COCO evaluations of a trained model share: loading the model to evaluate (a SavedModel,
a training workdir, a .keras or a .tflite file) as a heatmaps function, its codec and its joint subset. Its own
module so that `kpt_tf.evaluate` (MPII's PCKh and the CLI) and `kpt_tf.evaluate_coco` (COCO's OKS AP) both take
it from one place without importing each other in a cycle.
"""

from __future__ import annotations


def load_model_for_eval(model_path, config=None, flip_test=True, flip_shift=False):
    """(heatmaps function, codec, joint subset) for a SavedModel dir, a training workdir, a .keras or a .tflite file."""
    from kpt_tf.trained import load_trained

    if str(model_path).endswith(".tflite"):
        from kpt_tf.predict import Predictor

        if flip_shift:
            raise ValueError("--flip_shift is not available for a TFLite model (its flip test runs in kpt_tf.predict)")
        predictor = Predictor.load(model_path, flip_test=flip_test)
        return predictor.heatmaps, predictor.codec, predictor.joints

    trained = load_trained(model_path, config=config)
    if trained.joints is None:
        raise ValueError(f"{model_path}: its joint subset is unknown (no config.json beside the .keras file)")
    return trained.heatmaps_fn(flip_test, flip_shift), trained.codec(), trained.joints
