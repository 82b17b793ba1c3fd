"""What exists: the architectures, their checkpoints and sources, closed-form sizes, the paper's numbers (no torch)."""
