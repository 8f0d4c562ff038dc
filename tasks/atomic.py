"""Atomic text writes for the tasks and engine layers: the analysis package's one implementation."""

from analysis.atomic import atomic_path, write_text

__all__ = ["atomic_path", "write_text"]
