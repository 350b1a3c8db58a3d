"""SemCLIP engine: models, losses, data, caption generation, training, evaluation and retrieval.

Pure Python + torch + open_clip. Nothing here imports Qt; the GUI and the CLI are thin clients.
"""

__version__ = "0.1.0"
