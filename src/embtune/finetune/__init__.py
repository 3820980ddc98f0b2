"""Full-model training: objectives (one file each), the one training loop, export.

Kept light on import: ``embtune.finetune`` is also the name of a public verb.
"""
