"""Full-model training: objectives (one file each), the one training loop, checkpoints, export."""
