"""Benchmarks (not tests): `python -m bench [name ...]` runs every `bench/<name>_bench.py`. See bench/README.md."""
