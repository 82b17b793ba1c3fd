"""Measuring: the bench harness and its backends, the GEMM roofline, FLOP counts, the machine, the results store."""
