"""Weight decay touches matrices only: biases and LayerNorm parameters never decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compgen_jax.models import make_model, model_family
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.optim import OptimizerConfig, make_optimizer

TINY = {
    "gpt2": DecoderConfig(vocab_size=12, max_len=8, emb_dim=16, num_heads=2, num_layers=1,
                          mlp_dim=32),
    "encoder_decoder": TransformerConfig(vocab_size=12, max_len=8, emb_dim=16, num_heads=2,
                                         num_encoder_layers=1, num_decoder_layers=1, mlp_dim=32),
}


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
@pytest.mark.parametrize("family", sorted(TINY))
def test_zero_gradient_step_shrinks_kernels_and_leaves_vectors(family: str, name: str):
    lr, wd = 0.1, 0.5
    params = nnx.state(make_model(TINY[family], rngs=nnx.Rngs(0)), nnx.Param)
    tx = make_optimizer(OptimizerConfig(name=name, learning_rate=lr, warmup_steps=1,
                                        decay="constant", weight_decay=wd),
                        model_family(TINY[family]).weight_decay_mask)
    state = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    after = params
    for _ in range(2):  # step 0 is the warmup's zero learning rate
        updates, state = tx.update(zeros, state, after)
        after = jax.tree.map(lambda p, u: p + u, after, updates)
    leaves = jax.tree_util.tree_leaves_with_path(params)
    moved = dict(zip([jax.tree_util.keystr(k) for k, _ in leaves],
                     jax.tree.leaves(after), strict=True))
    names = {"vector": [], "matrix": []}
    for key, before in leaves:
        got = np.asarray(moved[jax.tree_util.keystr(key)])
        if before.ndim >= 2:
            names["matrix"].append(key)
            assert np.linalg.norm(got) < np.linalg.norm(before)
            if name == "adamw":  # decoupled decay: p <- p - lr * wd * p
                np.testing.assert_allclose(got, (1 - lr * wd) * np.asarray(before), rtol=1e-6)
        else:
            names["vector"].append(key)
            np.testing.assert_array_equal(got, np.asarray(before))
    assert names["matrix"] and names["vector"]
    assert any("bias" in jax.tree_util.keystr(k) for k in names["vector"])
    assert any("scale" in jax.tree_util.keystr(k) for k in names["vector"])
