"""Evaluation: pure metrics, benchmark loaders in their published formats, the run over one or
more models, zero-shot classification and CLIP_benchmark's result files.

Does not import :mod:`engine.train` (tests/test_project.py guards the layers).
"""
