"""Exploring models, Qt-free: everything the app shows (what a model makes of an image and its
captions, gallery search, what a query denies, "-term" queries, weight blending, the projection
subspace). The GUI's panels are thin views over these functions.

Does not import :mod:`engine.train` (tests/test_project.py guards the layers).
"""
