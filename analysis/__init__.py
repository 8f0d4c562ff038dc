"""Sweep-result analysis on NumPy/SciPy/pandas only: no JAX, so results can be studied on a laptop.

Submodules are imported on demand (``analysis.results``, ``analysis.dose_response``, ...) so that
``import analysis`` stays cheap.
"""
