"""Models: spec parsing and loading, checkpoints and delta export, fast text/image encoding, the
on-disk image-embedding caches, pretrained image trunks and the SemCLIP loss's projection.

The bottom layer of the engine: it imports nothing from ``data``, ``train``, ``eval`` or
``explore`` (tests/test_project.py guards the layers).
"""
