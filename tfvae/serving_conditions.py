"""The `condition` input of the SavedModel of a cvae on real conditions (tfvae/serving.py).

A cvae trained on data with conditions (--condition_columns, tfvae.data.from_arrays(conditions=))
is given c float32 [N, C] wherever the class cvae is given y: its signatures are

  encode(x [N, ...], condition [N, C])      -> loc, scale [N, D]          q(z|x, c)
  decode(z [N, D], condition [N, C])        -> mean and the likelihood's parameters
  reconstruct(x, condition) (= serving_default), elbo(x, condition) -> elbo, rate, distortion
  sample(n int32 [], seed int32 [2], condition [n, C] or [1, C]) -> mean, sample [n, ...]
                                             (z ~ p(z|c), x ~ p(x|z, c); one row is given to
                                             every draw)

Each checks in its graph that the condition has C columns, as many rows as x (z; n or 1 for
sample) and finite values; a refusal is an InvalidArgumentError naming the signature, the
argument and what it expects, as the other checks (tfvae/serving_inputs.py).
"""

import tensorflow as tf

from tfvae.models import interface

NAME = "condition"


def width(model):
  """C for a cvae on real conditions (a Conditional model without classes), else 0."""
  if isinstance(model, interface.Conditional) and not isinstance(model,
                                                                   interface.LabelConditional):
    return int(model.condition_dim)
  return 0


def spec(model):
  """[TensorSpec condition float32 [None, C]] for a cvae on conditions, else []."""
  c = width(model)
  return [tf.TensorSpec([None, c], tf.float32, name=NAME)] if c else []


def checked(condition, num_columns, signature, rows, one_row_too=False):
  """`condition` once it is [rows, C] (or, with one_row_too, [1, C], then broadcast to rows)
  with finite values; otherwise an InvalidArgumentError naming the signature.

  Args:
    condition: float32 Tensor, the signature's condition argument.
    num_columns: int C.
    signature: the signature's name, for messages.
    rows: int32 scalar Tensor, the rows expected (x's, z's, or sample's n).
    one_row_too: also accept one row [1, C], given to every example (sample).

  Returns:
    float32 Tensor [rows, C].
  """
  shape = tf.shape(condition)
  rows_ok = tf.equal(shape[0], rows)
  if one_row_too:
    rows_ok = tf.logical_or(rows_ok, tf.equal(shape[0], 1))
  expected = (f"[n, {num_columns}] or [1, {num_columns}]" if one_row_too
              else f"[N, {num_columns}] (one row per example)")
  checks = [
      tf.debugging.Assert(
          tf.logical_and(rows_ok, tf.equal(shape[1], num_columns)),
          [f"signature {signature} expects {NAME} float32 {expected}; got shape", shape,
           "for rows", rows], summarize=8),
      tf.debugging.Assert(
          tf.reduce_all(tf.math.is_finite(condition)),
          [f"signature {signature} expects {NAME} finite; got NaN or inf"])]
  with tf.control_dependencies(checks):
    condition = tf.identity(condition)
  return tf.broadcast_to(condition, tf.stack([rows, num_columns])) if one_row_too else condition
