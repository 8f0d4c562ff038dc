"""Stacked per-seed training state and one compiled step that trains every seed of a cell.

Arrays carry a leading seed axis: params/opt state [S, ...], keys [S], order tables [S, T*B].
The tokenized pool stays on device, and each seed's batch is gathered inside the step. Seeds stay
independent: a seed whose loss or gradients turn non-finite is frozen and flagged (`diverged`), and
a seed marked inactive (early-stopped, or padding) is frozen.

Each step pads its batch only as far as it needs (`length_buckets` > 1): to the shortest of a few
fixed bucket lengths (`bucket_lengths`) that holds the longest example any live seed draws at that
step, so a step of short examples does not pay for the pool's longest one. The call compiles one
forward/backward pass per bucket (a `lax.switch` on an index all seeds share) and one optimizer
update.
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

from compgen_jax.models import ModelConfig, make_model, model_family
from compgen_jax.models.transformer import count_params
from compgen_jax.optim import OptimizerConfig

# Device-resident int32 pools: encoder-decoder {"inputs": [N, Li], "targets": [N, Lt]};
# decoder-only {"tokens": [N, L], "loss_mask": [N, L]} (answer positions, COVERAGE_PRINCIPLE s.3).
Pool = dict[str, jax.Array]
State = dict[str, Any]  # params, opt, key, step [S], active [S], diverged [S]
BUCKETED = ("inputs", "targets")  # the [N, L] token features a step cuts to its bucket length
BUCKET_ALIGN = 8  # bucket lengths are multiples of this (or the longest feature's full length)
DECODE_CHUNK = 32  # greedy positions per compiled decode call; decoding stops once all rows end


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
    length_buckets: int = 1  # step lengths per pool (`bucket_lengths`); 1 = always full padding

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

    def seed_batch(self, state: State, order: jax.Array, pool: Pool) -> Pool:
        """One seed's batch at its stream position, every feature at the pool's full length.

        Stream position p (= step * B) is read at order[p % len(order)]: a full [T*B] table, or a
        ring buffer refilled before each call (the next steps_per_call * B positions of the
        stream) when the whole table would be too large.
        """
        start = (state["step"] * self.batch_size) % order.shape[0]
        idx = jax.lax.dynamic_slice_in_dim(order, start, self.batch_size)
        return {name: jnp.take(array, idx, axis=0) for name, array in pool.items()}

    def apply_one(self, state: State, loss: jax.Array, grads: nnx.State,
                  key: jax.Array) -> State:
        """One seed's optimizer step from its loss and gradients; `key` is its next dropout key.
        A frozen seed (inactive or diverged) keeps params, optimizer state, key and data
        position."""
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
        }

    @functools.cached_property
    def train(self) -> Callable[..., tuple[State, jax.Array]]:
        """(state [S], orders [S, T*B], pool, num_steps=None) -> (state, losses [S, num_steps]).

        `num_steps` (default `steps_per_call`) steps of every seed. Each step pads the seeds'
        batches to the shortest of `length_buckets` bucket lengths (`bucket_lengths`) that holds
        the longest live seed's example of that step; padding is masked, so a seed's loss is
        the full-padding loss up to float rounding, whichever seeds share its step.

        The state is donated. A shorter `num_steps` (a run's final, partial call) compiles once
        more; the steps themselves are the same, so k + m steps equal one call of k + m.
        """

        def train(state: State, orders: jax.Array, pool: Pool, num_steps: int | None = None):
            features = {f: pool[f].shape[1] for f in BUCKETED if f in pool}
            lengths = bucket_lengths(max(features.values(), default=0), self.length_buckets)

            def bucket(length: int) -> Callable[[nnx.State, Pool, jax.Array], Any]:
                def run(params: nnx.State, batch: Pool, key: jax.Array) -> Any:
                    cut = {f: batch[f][:, :, :min(n, length)] for f, n in features.items()}
                    return jax.vmap(jax.value_and_grad(self.loss_fn))(params, {**batch, **cut},
                                                                      key)

                return run

            def step(state: State, _) -> tuple[State, jax.Array]:
                batch = jax.vmap(self.seed_batch, in_axes=(0, 0, None))(state, orders, pool)
                live = state["active"] & ~state["diverged"]
                index = bucket_index(batch, live, lengths)
                keys = jax.vmap(jax.random.split)(state["key"])
                # only the forward and backward pass differ between buckets: the optimizer step
                # is compiled once, outside the switch
                loss, grads = jax.lax.switch(index, [bucket(n) for n in lengths],
                                             state["params"], batch, keys[:, 1])
                return jax.vmap(self.apply_one)(state, loss, grads, keys[:, 0]), loss

            state, losses = jax.lax.scan(step, state, None,
                                         length=num_steps or self.steps_per_call)
            return state, losses.T

        return jax.jit(train, donate_argnums=0, static_argnames="num_steps")

    @functools.cached_property
    def score(self) -> Callable[[nnx.State, Pool], jax.Array]:
        """(params [S], pool of B examples) -> per-seed, per-example teacher-forced score [S, B]
        (the family's `score`; decoder-only: fraction of answer tokens right)."""
        return jax.jit(jax.vmap(lambda params, pool: self.model(params).score(pool),
                                in_axes=(0, None)))

    @functools.cached_property
    def _full_decode(self) -> Callable[..., jax.Array]:
        def predict(params, inputs, max_decode_len, situation):
            return self.model(params).predict(inputs, max_decode_len, situation)

        return jax.jit(jax.vmap(predict, in_axes=(0, None, None, None)), static_argnums=2)

    def full_decode(
        self, params: nnx.State, inputs: jax.Array, max_decode_len: int,
        situation: jax.Array | None = None,
    ) -> jax.Array:
        """Greedy decoding as `decode`, as one compiled loop over every position (the family's
        `predict`, never stopping early)."""
        return self._full_decode(params, inputs, max_decode_len, situation)

    @functools.cached_property
    def _decode_start(self) -> Callable[..., Any]:
        def start(params, inputs, max_decode_len, situation):
            return self.model(params).decode_start(inputs, max_decode_len, situation)

        return jax.jit(jax.vmap(start, in_axes=(0, None, None, None)), static_argnums=2)

    @functools.cached_property
    def _decode_chunk(self) -> Callable[..., Any]:
        def chunk(params, state, inputs, start, length):
            return self.model(params).decode_chunk(state, inputs, start, length)

        return jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None, None)), static_argnums=4,
                       donate_argnums=1)

    def decode(
        self, params: nnx.State, inputs: jax.Array, max_decode_len: int,
        situation: jax.Array | None = None,
    ) -> jax.Array:
        """Greedy decoding, (params [S], inputs [B, Li], max_decode_len[, situation [B, C, F]])
        -> tokens [S, B, L] (the family's `predict`).

        A family with `decode_chunk` (encoder-decoder) decodes DECODE_CHUNK positions per
        compiled call and stops once every row of every seed has emitted EOS; the positions it
        skips hold 0, as `full_decode` leaves them, so the tokens equal `full_decode`'s.
        """
        if not hasattr(model_family(self.model_config), "decode_chunk"):
            return self.full_decode(params, inputs, max_decode_len, situation)
        state = self._decode_start(params, inputs, max_decode_len, situation)
        chunks = []
        for start in range(0, max_decode_len, DECODE_CHUNK):
            state, tokens = self._decode_chunk(params, state, inputs, start,
                                               min(DECODE_CHUNK, max_decode_len - start))
            chunks.append(tokens)
            if bool(jnp.all(state[2])):  # every row has ended: the rest would be 0
                break
        tokens = jnp.concatenate(chunks, axis=-1)
        return jnp.pad(tokens, ((0, 0), (0, 0), (0, max_decode_len - tokens.shape[-1])))


def bucket_lengths(longest: int, count: int) -> list[int]:
    """The step lengths of a pool whose longest BUCKETED feature pads to `longest`: k / count of
    it for k = 1..count, rounded up to a multiple of BUCKET_ALIGN, at most `longest`, repeats
    dropped. A step pads each bucketed feature to its bucket length or its own full length,
    whichever is shorter."""
    lengths: list[int] = []
    for k in range(1, count + 1):
        share = -(-longest * k // count)  # ceil(longest * k / count)
        length = min(longest, -(-share // BUCKET_ALIGN) * BUCKET_ALIGN)
        if not lengths or length != lengths[-1]:
            lengths.append(length)
    return lengths


def bucket_index(batch: Pool, live: jax.Array, lengths: list[int]) -> jax.Array:
    """Index in `lengths` of the shortest bucket that holds every live seed's examples of the
    batch (features [S, B, L]; a padded token is 0; no live seed: the shortest)."""
    if len(lengths) == 1:
        return jnp.zeros((), jnp.int32)
    longest = jnp.zeros((), jnp.int32)
    for f in BUCKETED:
        if f in batch:
            ends = jnp.arange(1, batch[f].shape[2] + 1)
            longest = jnp.maximum(longest, jnp.max(jnp.where(
                live[:, None, None] & (batch[f] != 0), ends, 0)))
    return jnp.sum(jnp.asarray(lengths) < longest).astype(jnp.int32)


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def select(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise jnp.where with a scalar condition (one seed's lane under vmap)."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)

