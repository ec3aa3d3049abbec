"""PyTorch twins of jgen's networks, with weight copiers jgen -> torch, for parity tests and benchmarks."""
