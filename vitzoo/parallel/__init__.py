"""Many processes, one result: torch.distributed sharding of evaluation, features and benchmarks, and ``--nproc``."""
