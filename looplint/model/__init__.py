"""The training-loop model of one file (placeholder until the model lands)."""
from __future__ import annotations


class FileModel:
    def __init__(self, module):
        self.module = module


def build_model(module) -> FileModel:
    return FileModel(module)
