"""TensorFlow for the seqio layer: loaded quietly, with accelerators hidden so TF never claims
JAX's GPU. Every module that imports seqio or TensorFlow imports this module first."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def _native_stderr_held() -> Iterator[None]:
    """Hold what C++ code writes to fd 2 (TF's oneDNN/CUDA start-up notices, printed before any
    log level applies); replay it only if the block fails, so real load errors stay visible."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _hide_accelerators(tf) -> None:
    """Make TF CPU-only (as t5x does); tolerate a TF runtime already started without GPUs."""
    try:
        tf.config.experimental.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised by an earlier importer
        if tf.config.get_visible_devices("GPU"):
            raise


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with _native_stderr_held():
    import tensorflow as tf

    _hide_accelerators(tf)

__all__ = ["tf"]
