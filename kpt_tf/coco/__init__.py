"""COCO's person-keypoint files (numpy and json only: no TensorFlow, no data_prep, no configs).

- `annotations`: person_keypoints_*.json -> people (`kpt_tf.mpii.person.PersonAnnotation` with the 17 coco17
  joints and the annotated box), the rules HRNet and mmpose apply (crowd regions and people without a labelled
  keypoint are not trained on; boxes clipped to the image).

The metric (OKS AP through pycocotools) is `kpt_tf.metrics.coco`.
"""

from kpt_tf.coco.annotations import COCO_LAYOUT, CROWD, read_coco_annotations

__all__ = ["COCO_LAYOUT", "CROWD", "read_coco_annotations"]
