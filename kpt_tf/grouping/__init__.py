"""Which joints belong together: the mutual information of joint locations (`mutual_information`), groups
clustered from it or from the body's structure (`clustering`), the annotation readers they use (`locations`),
and the CLI `python -m kpt_tf.grouping` (groups for the Part-Based Branching Network, sources for KPTransfer)."""
