"""The `NnDistance` custom op: C++/CUDA sources, `python -m losses.ops.build`, and the lazy loader (loader.py)."""
