"""Stacked per-seed training state and one compiled step that trains every seed of a cell.

Arrays carry a leading seed axis: params/opt state [S, ...], keys [S], order tables [S, T*B].
The tokenized pool stays on device, and each seed's batch is gathered inside the step. Seeds stay
independent: a seed whose loss or gradients turn non-finite is frozen and flagged (`diverged`), and
a seed marked inactive (early-stopped, or padding) is frozen.

A call pads its batches only as far as it needs (`length_buckets` > 1): the host reads the longest
example the live seeds draw in the call's steps and rounds it up to one of a few fixed bucket
lengths (`bucket_lengths`); the step is compiled once per bucket length met (lazily, cached), so
a call of short examples does not pay for the pool's longest one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from compgen_jax.models import ModelConfig, make_model
from compgen_jax.models.transformer import count_params
from compgen_jax.optim import OptimizerConfig

# Device-resident int32 pools: encoder-decoder {"inputs": [N, Li], "targets": [N, Lt]};
# decoder-only {"tokens": [N, L], "loss_mask": [N, L]} (answer positions, COVERAGE_PRINCIPLE s.3).
Pool = dict[str, jax.Array]
State = dict[str, Any]  # params, opt, key, step [S], active [S], diverged [S]
BUCKETED = ("inputs", "targets")  # the [N, L] token features a call cuts to its bucket length
BUCKET_ALIGN = 8  # bucket lengths are multiples of this (or the longest feature's full length)


@dataclasses.dataclass(frozen=True)
class MultiSeedTrainer:
    """Compiled init / train / score / decode functions for one (model, optimizer, batch) setting.

    The model family owns its loss, score and predict; the trainer only vmaps and compiles them.

    Cells that share the setting reuse the compiled step (same shapes -> jit cache hit).
    """

    model_config: ModelConfig
    optimizer: optax.GradientTransformation
    batch_size: int
    steps_per_call: int
    optimizer_config: OptimizerConfig | None = None  # what `optimizer` was made from, if known
    length_buckets: int = 1  # call lengths per pool (`bucket_lengths`); 1 = always full padding

    @functools.cached_property
    def graphdef(self) -> nnx.GraphDef:
        abstract = nnx.eval_shape(lambda: make_model(self.model_config, rngs=nnx.Rngs(0)))
        return nnx.split(abstract)[0]

    def model(self, params: nnx.State) -> nnx.Module:
        return nnx.merge(self.graphdef, params)

    def init_one(self, seed: jax.Array) -> State:
        """Fresh state of one seed; typed keys so the function vmaps over integer seeds."""
        param_key, dropout_key = jax.random.split(jax.random.key(seed))
        model = make_model(self.model_config, rngs=nnx.Rngs(params=param_key))
        params = nnx.state(model, nnx.Param)
        return {"params": params, "opt": self.optimizer.init(params), "key": dropout_key,
                "step": jnp.zeros((), jnp.int32), "active": jnp.ones((), bool),
                "diverged": jnp.zeros((), bool)}

    @functools.cached_property
    def num_params(self) -> int:
        """Parameters per seed, from shapes only (nothing is allocated)."""
        return count_params(jax.eval_shape(self.init_one, 0)["params"])

    @functools.cached_property
    def init(self) -> Callable[[jax.Array], State]:
        """seeds [S] -> stacked state [S, ...]."""
        return jax.jit(jax.vmap(self.init_one))

    def loss_fn(self, params: nnx.State, batch: Pool, key: jax.Array) -> jax.Array:
        """The model family's own training loss on one batch."""
        return self.model(params).loss(batch, key)

    def batch_ids(self, order: jax.Array, step: jax.Array) -> jax.Array:
        """One seed's example ids [B] at its `step`: stream position p (= step * B) is read at
        order[p % len(order)], a full [T*B] table or a ring buffer refilled before each call (the
        next steps_per_call * B positions of the stream) when the whole table would be too
        large."""
        start = (step * self.batch_size) % order.shape[0]
        return jax.lax.dynamic_slice_in_dim(order, start, self.batch_size)

    def train_one(
        self, state: State, order: jax.Array, pool: Pool, num_steps: int, length: int | None
    ) -> tuple[State, jax.Array]:
        """`num_steps` steps of one seed; order holds its example ids (`batch_ids`); the
        BUCKETED features are cut to `length` (None: the pool's own). A frozen seed (inactive
        or diverged) keeps params, optimizer state, key and data position."""

        def step(state: State, _) -> tuple[State, jax.Array]:
            idx = self.batch_ids(order, state["step"])
            batch = {name: jnp.take(array, idx, axis=0)[:, :length] if name in BUCKETED
                     else jnp.take(array, idx, axis=0) for name, array in pool.items()}
            key, sub = jax.random.split(state["key"])
            loss, grads = jax.value_and_grad(self.loss_fn)(state["params"], batch, sub)
            updates, opt = self.optimizer.update(grads, state["opt"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            live = state["active"] & ~state["diverged"]
            finite = jnp.isfinite(loss) & all_finite(grads)
            keep = live & finite
            return {
                **state,
                "params": select(keep, params, state["params"]),
                "opt": select(keep, opt, state["opt"]),
                "key": jnp.where(live, key, state["key"]),
                "step": state["step"] + live.astype(jnp.int32),
                "diverged": state["diverged"] | (live & ~finite),
            }, loss

        return jax.lax.scan(step, state, None, length=num_steps)

    @functools.cached_property
    def _train(self) -> Callable[..., tuple[State, jax.Array]]:
        def train(state: State, orders: jax.Array, pool: Pool, num_steps: int,
                  length: int | None):
            one = functools.partial(self.train_one, num_steps=num_steps, length=length)
            return jax.vmap(one, in_axes=(0, 0, None))(state, orders, pool)

        return jax.jit(train, donate_argnums=0, static_argnames=("num_steps", "length"))

    @functools.cached_property
    def _longest(self) -> Callable[[State, jax.Array, Pool, int], jax.Array]:
        def longest(state: State, orders: jax.Array, pool: Pool, num_steps: int) -> jax.Array:
            live = state["active"] & ~state["diverged"]
            steps = state["step"][:, None] + jnp.arange(num_steps)  # [S, num_steps]
            ids = jax.vmap(jax.vmap(self.batch_ids, in_axes=(None, 0)))(orders, steps)
            ids = ids.reshape(ids.shape[0], -1)  # [S, num_steps * B]
            ends = jnp.zeros(ids.shape, jnp.int32)
            for name in BUCKETED:
                if name in pool:
                    rows = jnp.take(pool[name], ids, axis=0) != 0  # [S, K, L]
                    ends = jnp.maximum(ends, jnp.max(
                        jnp.where(rows, jnp.arange(1, rows.shape[-1] + 1), 0), axis=-1))
            return jnp.max(jnp.where(live[:, None], ends, 0))

        return jax.jit(longest, static_argnames="num_steps")

    def call_length(self, state: State, orders: jax.Array, pool: Pool,
                    num_steps: int) -> int | None:
        """The length a call of `num_steps` steps cuts its BUCKETED features to: the shortest
        bucket length that holds the longest example any live seed draws in the call (a padded
        token is 0); None (no cut) with one bucket or when that is the full length."""
        full = max((pool[name].shape[1] for name in BUCKETED if name in pool), default=0)
        if self.length_buckets == 1 or not full:
            return None
        longest = int(self._longest(state, orders, pool, num_steps))
        length = next(n for n in bucket_lengths(full, self.length_buckets) if n >= longest)
        return None if length == full else length

    def train(self, state: State, orders: jax.Array, pool: Pool,
              num_steps: int | None = None) -> tuple[State, jax.Array]:
        """(state [S], orders [S, T*B], pool, num_steps=None) -> (state, losses [S, num_steps]).

        `num_steps` (default `steps_per_call`) steps of every seed, padded to the call's bucket
        length (`call_length`; padding is masked, so a seed's losses equal the full-padding
        ones up to float rounding, whichever seeds share its call). The state is donated. Each
        new (num_steps, bucket length) compiles once; the steps themselves are the same, so
        k + m steps equal one call of k + m up to float rounding (bitwise with one bucket).
        """
        num_steps = num_steps or self.steps_per_call
        length = self.call_length(state, orders, pool, num_steps)
        return self._train(state, orders, pool, num_steps=num_steps, length=length)

    @functools.cached_property
    def score(self) -> Callable[[nnx.State, Pool], jax.Array]:
        """(params [S], pool of B examples) -> per-seed, per-example teacher-forced score [S, B]
        (the family's `score`; decoder-only: fraction of answer tokens right)."""
        return jax.jit(jax.vmap(lambda params, pool: self.model(params).score(pool),
                                in_axes=(0, None)))

    @functools.cached_property
    def _decode(self) -> Callable[[nnx.State, jax.Array, int, jax.Array | None], jax.Array]:
        def predict(params, inputs, max_decode_len, situation):
            return self.model(params).predict(inputs, max_decode_len, situation)

        return jax.jit(jax.vmap(predict, in_axes=(0, None, None, None)), static_argnums=2)

    def decode(
        self, params: nnx.State, inputs: jax.Array, max_decode_len: int,
        situation: jax.Array | None = None,
    ) -> jax.Array:
        """Greedy decoding, (params [S], inputs [B, Li], max_decode_len[, situation [B, C, F]])
        -> tokens [S, B, L] (the family's `predict`)."""
        return self._decode(params, inputs, max_decode_len, situation)


def bucket_lengths(longest: int, count: int) -> list[int]:
    """The call lengths of a pool whose longest BUCKETED feature pads to `longest`: k / count of
    it for k = 1..count, rounded up to a multiple of BUCKET_ALIGN, at most `longest`, repeats
    dropped. A call pads each bucketed feature to its bucket length or its own full length,
    whichever is shorter."""
    lengths: list[int] = []
    for k in range(1, count + 1):
        share = -(-longest * k // count)  # ceil(longest * k / count)
        length = min(longest, -(-share // BUCKET_ALIGN) * BUCKET_ALIGN)
        if not lengths or length != lengths[-1]:
            lengths.append(length)
    return lengths


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def select(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise jnp.where with a scalar condition (one seed's lane under vmap)."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)

