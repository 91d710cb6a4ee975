"""MPII's file formats, in one package (numpy/scipy/h5py only: no TensorFlow, no data_prep, no configs).

- `coords`: the 1-based <-> 0-based rule and the "not annotated = (0, 0) in joint_self" rule.
- `evaluation_files`: ground truth and prediction .mat/.h5 files (read and write).
- `person`: one person of an annotation file (`PersonAnnotation`), the splits, the field rules every reader shares.
- `annotations`: annotation files (release .mat with its test people, mpii_annotations.json, the generator's
  json) -> people, the validation list, and the json writer; `hrnet_json`: HRNet's/mmpose's train/valid/
  trainval/test.json (read through `annotations.read_annotations`).
- `submission`: MPII's test-server file pred_keypoints_mpii.mat (the release's test annotation list with the
  predicted points): matching test records to the release's rectangles, writing, reading back.
"""

from kpt_tf.mpii.annotations import (
                                     SPLITS,
                                     AnnotationError,
                                     PersonAnnotation,
                                     read_annotations,
                                     read_json_annotations,
                                     read_release_mat,
                                     read_val_list,
                                     write_json_annotations,
)
from kpt_tf.mpii.coords import from_one_based, to_one_based
from kpt_tf.mpii.evaluation_files import (
                                     GroundTruth,
                                     load_ground_truth,
                                     load_predictions,
                                     save_ground_truth_mat,
                                     save_predictions_mat,
)

__all__ = [
    "PersonAnnotation", "AnnotationError", "SPLITS", "read_annotations", "read_json_annotations",
    "read_release_mat", "read_val_list", "write_json_annotations", "GroundTruth", "load_ground_truth",
    "load_predictions", "save_predictions_mat", "save_ground_truth_mat", "from_one_based", "to_one_based",
]
