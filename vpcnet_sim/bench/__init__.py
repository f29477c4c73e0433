"""Benchmarks: `vpcnet bench cni` (plugin ADD/DEL latency vs the reference plugins) and `vpcnet bench storm` (join storm vs the EC2 throttling lower bound)."""
