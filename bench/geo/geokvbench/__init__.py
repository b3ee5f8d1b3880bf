"""geokv-bench: the cross-region benchmark suite (docs/bench.md)."""
