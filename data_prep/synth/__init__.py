"""Procedural MPII-format data set: articulated figures on textured backgrounds, in MPII's own files.

The project's embedded default data set (MPII images cannot be downloaded everywhere). Each image holds
1-3 figures posed by a small 3D kinematic model of the 16 MPII joints, seen from any side and projected
orthographically, then drawn as tapered capsules (limbs), a hull (torso) and an ellipsoid head with a face.

Modules, in the order a figure is made:
  figure            3D kinematics: body proportions, pose sampling, skeleton, projection and views
  painting          drawable parts, colours and palettes, drawing, backgrounds, occluders, camera effects
  scene             one generated image: placement, painter's order, occluders, visibility, head box
  from_annotations  figures at the real poses of an MPII annotation file (--from_annotations)
  generate          the data set writer (generate()): images/, annotations.json, gt_val.mat
  coco_people       the same people as COCO person keypoints (person_keypoints_{train,val}.json)
  __main__          the CLI: python -m data_prep.synth --output_dir D [--num_train N --num_val M --seed S]

Output (`--output_dir D`):
  D/images/*.jpg          the images
  D/annotations.json      one record per person in the schema of mpii_annotations.json (1-based pixels,
                          floats written with 3 decimals like the real file) plus `headbox` [[x1,y1],[x2,y2]]
  D/gt_val.mat            the validation people in the layout of detections_our_format.mat
  D/person_keypoints_train.json, D/person_keypoints_val.json
                          the same people in COCO's person-keypoints format (coco17: face points from the
                          painted head, visibility 0/1/2, the silhouette's box; module coco_people)
"""
