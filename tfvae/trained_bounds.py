"""The traced per-example terms and bounds TrainedModel evaluates in batches (tfvae/trained.py).

`terms_function` (model.losses: elbo, rate, distortion) and `bound_function` (the
importance-weighted bound) are tf.functions with batch dimension None, traced once per model
(and K, chunk_size); `batched` runs one over batches of rows. Example i gets the noise
`evaluate` gives the i-th example of a split (the evaluation seed, its index), so no result
depends on the batch size.
"""

from typing import Any

import numpy as np
import tensorflow as tf

from tfvae import model_inputs
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.models import interface


def spec(config: Any, model: Any) -> list[tf.TensorSpec]:
  """The input signature of TrainedModel's traced functions: x [None, *image_shape], index
  [None], label [None] (and condition [None, C] for a cvae on conditions)."""
  return [tf.TensorSpec([None, *config.data.image_shape], tf.float32, name="x"),
          tf.TensorSpec([None], tf.int64, name="index"),
          tf.TensorSpec([None], tf.int64, name="label")] + (
              [tf.TensorSpec([None, config.data.condition_dim], tf.float32, name="condition")]
              if model_inputs.on_conditions(model) else [])


def batch(x: tf.Tensor, index: tf.Tensor, label: tf.Tensor,
          condition: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
  """The batch dict of the traced functions' arguments (condition: () or (c [B, C],))."""
  return {"image": x, "label": label, "index": index,
          **({"condition": condition[0]} if condition else {})}


def batched(fn: Any, x: tf.Tensor, given_: dict[str, tf.Tensor], batch_size: int) -> Any:
  """fn(x[i:j], index[i:j], label[i:j](, condition[i:j])) over batches of `batch_size` rows
  (`given_`: what `given` returned), concatenated (numpy): a dict of [N] arrays for a dict,
  else an [N] array. Each example's noise depends on its index, so the result does not depend
  on batch_size."""
  num = int(x.shape[0])
  parts = [fn(x[i:i + batch_size], tf.range(i, min(num, i + batch_size), dtype=tf.int64),
              *[given_[k][i:i + batch_size] for k in ("label", "condition") if k in given_])
           for i in range(0, max(num, 1), batch_size)]
  if isinstance(parts[0], dict):
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}
  return np.concatenate([p.numpy() for p in parts])


def terms_function(config: Any, model: Any, step: int) -> Any:
  """model.losses at the evaluation seed, traced (batch dimension None)."""
  seed = tf.constant(evaluator_lib.EVAL_SEED, tf.int32)
  step_ = tf.constant(step, tf.int64)

  def terms(x: tf.Tensor, index: tf.Tensor, label: tf.Tensor,
            *condition: tf.Tensor) -> dict[str, tf.Tensor]:
    return model.losses(batch(x, index, label, condition), seed, step_, training=False)

  return tf.function(terms, input_signature=spec(config, model), autograph=False)


def bound_function(config: Any, model: Any, num_importance_samples: int,
                   chunk_size: int) -> Any:
  """The importance-weighted bound with K and chunk_size, traced (batch dimension None)."""
  seed = tf.constant(evaluator_lib.EVAL_SEED, tf.int32)

  def bound(x: tf.Tensor, index: tf.Tensor, label: tf.Tensor,
            *condition: tf.Tensor) -> tf.Tensor:
    given = model
    if isinstance(model, interface.Conditional):  # log p(x|c): the model given c
      given = model.given(model.condition(batch(x, index, label, condition)))
    return evaluator_lib.iwae_bound(given, x, num_importance_samples, chunk_size, seed,
                                    q_z=given.posterior(x), index=index)

  return tf.function(bound, input_signature=spec(config, model), autograph=False)
