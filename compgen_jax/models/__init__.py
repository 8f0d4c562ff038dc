"""Model families: encoder-decoder (seq2seq benchmarks) and GPT-2-style decoder-only (synthetic).

Importing the package registers both configs with gin, so a gin file may bind either one.
"""

from __future__ import annotations

import functools
from typing import Protocol, runtime_checkable

import jax
from flax import nnx

from compgen_jax.models.decoder_only import DecoderConfig, DecoderOnly
from compgen_jax.models.transformer import EncoderDecoder, TransformerConfig

ModelConfig = TransformerConfig | DecoderConfig
EMBEDDING_PARAMS = ("embed", "enc_pos", "dec_pos", "logits", "wte", "wpe")


@runtime_checkable
class ModelFamily(Protocol):
    """What every model family provides to the trainer, the evaluators and the optimizer (t5x's
    BaseModel): a batch's training loss, its teacher-forced per-example score, greedy
    predictions, and which parameters decay. A batch is the family's dict of token arrays."""

    def loss(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """Mean token cross-entropy of the batch (scalar); `key` drives dropout (None: off)."""
        ...

    def score(self, batch: dict[str, jax.Array]) -> jax.Array:
        """Per example, the fraction of scored target tokens the model predicts right [B]."""
        ...

    def predict(self, inputs: jax.Array, max_decode_len: int) -> jax.Array:
        """Greedy decoding: inputs [B, L] -> tokens [B, max_decode_len]."""
        ...

    @staticmethod
    def weight_decay_mask(params: nnx.State) -> nnx.State:
        """Which parameters (True leaves) the optimizer's weight decay applies to."""
        ...


def model_family(config: ModelConfig) -> type[ModelFamily]:
    """The model family a config describes; the family owns its loss, score / predict and which
    parameters get weight decay."""
    return DecoderOnly if isinstance(config, DecoderConfig) else EncoderDecoder


def make_model(config: ModelConfig, *, rngs: nnx.Rngs) -> EncoderDecoder | DecoderOnly:
    """A freshly initialised model of the family a config describes."""
    return model_family(config)(config, rngs=rngs)


@functools.cache
def param_counts(config: ModelConfig) -> tuple[int, int]:
    """(total, non-embedding) parameter counts, from shapes only (nothing is allocated).

    Non-embedding leaves out token embeddings, learned positions and an untied output head.
    Cached per config: tracing the model's init takes ~2 s, and validation asks once per cell.
    """
    params = nnx.state(nnx.eval_shape(lambda: make_model(config, rngs=nnx.Rngs(0))), nnx.Param)
    total = embedding = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        total += leaf.size
        if getattr(path[0], "key", None) in EMBEDDING_PARAMS:
            embedding += leaf.size
    return total, total - embedding
