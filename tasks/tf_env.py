"""TensorFlow for the seqio layer, with accelerators hidden so TF never claims JAX's GPU."""

from __future__ import annotations

import tensorflow as tf


def _hide_accelerators() -> None:
    """Make TF CPU-only (as t5x does); tolerate a TF runtime already started without GPUs."""
    try:
        tf.config.experimental.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised by an earlier importer
        if tf.config.get_visible_devices("GPU"):
            raise


_hide_accelerators()

__all__ = ["tf"]
