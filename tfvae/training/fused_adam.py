"""Adam whose per-variable update is TensorFlow's fused kernel (`ResourceApplyAdam`).

Keras 3's Adam updates each variable with about ten separate element-wise ops (two slot
updates, a square root, a division, ...), each a pass over memory. `FusedAdam` keeps Keras's
Adam (same slots `m`, `v`, same checkpoint layout, same hyperparameters, clipping and
distribution handling) and replaces only `update_step` with the one-pass fused kernel TensorFlow
ships for it, which computes the same formula (Kingma & Ba 2015, Algorithm 1 with the
"epsilon hat" of section 2):

  lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
  m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;  w <- w - lr_t m / (sqrt(v) + eps)

With `normalize_gradients=True` each variable's gradient is first divided by its L2 norm,
g / (||g||_2 + 1e-7): the "AdamNormGrad" of the VampPrior code (Tomczak & Welling 2018). The
division happens in `update_step`, which receives the all-reduced gradient, so one and N
replicas normalize the same gradient.

Measured on a 2-core CPU: a train step of a bare 784-512-256-784 MLP (batch 128) went from
6.6 to 5.2 ms with it (README "Speed"). With amsgrad it falls back to Keras's update.
"""

import keras
import tensorflow as tf


NORM_EPSILON = 1e-7


def _handle(variable):
  """The resource handle of a Keras variable, a tf.Variable, or this device's component of a
  distributed variable (inside `strategy.extended.update`, where Keras calls update_step)."""
  if isinstance(variable, keras.Variable):
    variable = variable.value
  return variable.handle


@keras.saving.register_keras_serializable("tfvae")
class FusedAdam(keras.optimizers.Adam):
  """keras.optimizers.Adam with TensorFlow's fused `ResourceApplyAdam` update (see module doc).

  Same constructor arguments as keras.optimizers.Adam, plus normalize_gradients (bool).
  """

  def __init__(self, *args, normalize_gradients=False, **kwargs):
    super().__init__(*args, **kwargs)
    self.normalize_gradients = normalize_gradients

  def get_config(self):
    return {**super().get_config(), "normalize_gradients": self.normalize_gradients}

  def update_step(self, gradient, variable, learning_rate):
    if self.normalize_gradients:
      gradient = gradient / (tf.norm(gradient) + tf.cast(NORM_EPSILON, gradient.dtype))
    if self.amsgrad:
      return super().update_step(gradient, variable, learning_rate)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    index = self._get_variable_index(variable)
    cast = lambda value: tf.cast(value, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=_handle(variable), m=_handle(self._momentums[index]),
        v=_handle(self._velocities[index]), beta1_power=tf.pow(cast(self.beta_1), step),
        beta2_power=tf.pow(cast(self.beta_2), step), lr=cast(learning_rate),
        beta1=cast(self.beta_1), beta2=cast(self.beta_2), epsilon=cast(self.epsilon),
        grad=cast(gradient))
