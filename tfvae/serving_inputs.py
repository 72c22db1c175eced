"""The SavedModel's input contract (tfvae/serving.py): what its signatures accept, written to
assets.extra/tfvae.json (`input_contract`), and the in-graph checks that refuse the rest.

Each check passes its tensor on once it holds, and otherwise fails the signature's call with an
InvalidArgumentError whose message names the signature, the argument and what it expects: x
and z (shape, finite, x in [0, 1]: `checked`), class indices y and sample's label
(`checked_labels`), sample's n (`checked_count`, at most MAX_SAMPLES). The `condition` input of
a cvae on real conditions is checked by tfvae/serving_conditions.py.
"""

import tensorflow as tf

# The most examples one `sample` call draws (its outputs are 2 x n images in memory at once):
# more is refused with a message; call it again with other seeds for more.
MAX_SAMPLES = 65536


def checked(tensor, name, signature, event_shape, unit_range=False):
  """`tensor` once its shape is [N, *event_shape], its values finite (and, with unit_range, in
  [0, 1]); otherwise an InvalidArgumentError whose message names the signature and what it
  expects."""
  shape = tf.shape(tensor)
  padded = tf.concat([shape, tf.zeros([len(event_shape) + 1], tf.int32)], 0)
  ok = tf.logical_and(tf.equal(tf.size(shape), len(event_shape) + 1),
                      tf.reduce_all(tf.equal(padded[1:len(event_shape) + 1], event_shape)))
  expected = ", ".join(["N"] + [str(d) for d in event_shape])
  checks = [tf.debugging.Assert(
      ok, [f"signature {signature} expects {name} float32 [{expected}]; got shape", shape],
      summarize=8)]
  flat = tf.reshape(tensor, [-1])
  if not unit_range:  # (the unit range check below refuses NaN and inf too)
    checks.append(tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(flat)),
        [f"signature {signature} expects {name} finite; got NaN or inf"]))
  if unit_range:
    # Flattened first: the min/max must work whatever rank reached the (parallel) shape check.
    low, high = tf.reduce_min(flat), tf.reduce_max(flat)
    in_range = tf.logical_or(tf.equal(tf.size(tensor), 0),
                             tf.logical_and(low >= 0.0, high <= 1.0))  # False for NaN too
    checks.append(tf.debugging.Assert(
        in_range, [f"signature {signature} expects {name} in [0, 1] (pixel values divided by "
                   "their maximum, e.g. uint8 / 255; 0 or 1 if the model was trained on "
                   "binarized pixels: see assets.extra/tfvae.json); got values from", low,
                   "to", high]))
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


def checked_labels(y, num_classes, name, signature, allow_negative=False, rows=None):
  """`y` once every value is a class index in [0, num_classes) (or, with allow_negative, < 0:
  "draw the class") and, where `rows` (int32 scalar Tensor: x's or z's rows) is given, y has
  one value per row; otherwise an InvalidArgumentError naming the signature."""
  y = tf.convert_to_tensor(y)
  if rows is not None:
    with tf.control_dependencies([tf.debugging.Assert(
        tf.equal(tf.size(y), rows),
        [f"signature {signature} expects {name} [rows] int64, one class per row (rows =",
         rows, f"); got {name} of shape", tf.shape(y)], summarize=8)]):
      y = tf.identity(y)
  low = -(2 ** 31) if allow_negative else 0
  expected = (f"< {num_classes} (a negative value draws y ~ p(y))" if allow_negative else
              f"in [0, {num_classes})")
  ok = tf.reduce_all(tf.logical_and(y >= tf.cast(low, y.dtype), y < num_classes))
  with tf.control_dependencies([tf.debugging.Assert(
      ok, [f"signature {signature} expects {name} {expected}, a class index of the "
           f"{num_classes} classes; got", y], summarize=8)]):
    return tf.identity(y)


def checked_count(n, signature):
  """`n` once it is one number (shape []) with 0 <= n <= MAX_SAMPLES; otherwise an
  InvalidArgumentError naming the signature and n."""
  # A signature call binds n by dtype only, so n [4, 4] reaches this graph, whose static shape
  # says []: shape ops fold to that. Its values are counted at run time instead (tf.where).
  flat = tf.reshape(n, [-1])
  count = tf.size(tf.where(tf.equal(flat, flat)))
  with tf.control_dependencies([tf.debugging.Assert(
      tf.equal(count, 1),
      [f"signature {signature} expects n int32 [] (one number); got n =", n], summarize=8)]):
    flat = tf.identity(flat)
  with tf.control_dependencies([tf.debugging.Assert(
      tf.reduce_all(tf.logical_and(flat >= 0, flat <= MAX_SAMPLES)),
      [f"signature {signature} expects 0 <= n <= {MAX_SAMPLES} (the outputs of one call are "
       "held in memory: call it again with another seed for more); got n =", n])]):
    return tf.reshape(flat, [])  # (a [1] or [1, 1] n is that one number)


def input_contract(config):
  """What the signatures expect of x, as written to the export's assets.extra/tfvae.json."""
  binarized = config.data.binarization in ("static", "dynamic")
  levels = config.data.pixel_levels
  if config.data.binarization == "dequantize":
    scaling = f"(pixel + u) / {levels}, u ~ U[0, 1) (uniform dequantization)"
  else:
    scaling = f"pixel / {levels - 1}"
  if len(config.data.image_shape) == 1:
    return {"dtype": "float32", "shape": ["N", *config.data.image_shape], "range": None,
            "scaling": ("raw features; the signatures standardize them with feature_mean and "
                        "feature_scale (config.json), and return raw units; elbo is the "
                        "log-density of the standardized features") if config.data.feature_mean
                       else "raw features", "binarized": False, "note": "vectors"}
  return {"dtype": "float32", "shape": ["N", *config.data.image_shape], "range": [0.0, 1.0],
          "scaling": scaling, "binarized": binarized,
          "note": ("trained on binarized pixels: pass 0/1 values (e.g. x > 0.5, or Bernoulli "
                   "samples of x) for log-likelihoods comparable to the run's; gray levels are "
                   "accepted") if binarized else "gray levels"}
