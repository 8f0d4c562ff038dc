"""Unified surface signatures: bucket schemes, codes, counts, bad schemes."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import signature as sig
from tasks.example import Example


def _ex(n_atoms: int, n_pairs: int, depth: int, out_len: int) -> Example:
    return Example("toy", "train", 0, "i", "t", frozenset(map(str, range(n_atoms))),
                   frozenset((str(k), "r") for k in range(n_pairs)), depth, out_len)


def test_log2_buckets_and_signature() -> None:
    assert sig.signature(_ex(3, 1, 2, 40), "log2") == (1, 0, 2, 5)
    assert sig.signature(_ex(3, 1, 2, 40), "exact") == (3, 1, 2, 40)
    assert sig.signature(_ex(3, 1, 2, 40), "coarse") == (0, 0, 2, 2)


def test_codes_equal_iff_same_bucket_tuple() -> None:
    examples = [_ex(3, 1, 2, 40), _ex(2, 1, 2, 33), _ex(3, 1, 2, 64), _ex(3, 1, 0, 40)]
    codes = sig.signature_codes(sig.feature_matrix(examples), "log2")
    assert codes[0] == codes[1] and len(set(codes.tolist())) == 3
    assert sig.count_signatures(examples, "log2") == 3
    assert sig.count_signatures(examples, "exact") == 4
    assert sig.signature_codes(np.zeros((0, 4), np.int64)).size == 0


def test_pluggable_schemes_and_errors() -> None:
    sig.register_scheme(sig.BucketScheme("depth_only", {"atoms": (10**9,), "pairs": (10**9,),
                                                         "out_len": (10**9,)}))
    assert sig.count_signatures([_ex(1, 1, 0, 5), _ex(7, 3, 0, 90)], "depth_only") == 1
    with pytest.raises(ValueError, match="unknown signature scheme 'nope'"):
        sig.get_scheme("nope")
    with pytest.raises(ValueError, match="unknown features"):
        sig.BucketScheme("bad", {"length": (1,)})
    with pytest.raises(ValueError, match="strictly ascending"):
        sig.BucketScheme("bad", {"depth": (2, 1)})
