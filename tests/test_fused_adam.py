import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.training import fused_adam


def _train(optimizer_class, strategy, steps, **kwargs):
  """Least squares with a small MLP; returns weights and optimizer slots after `steps` steps."""
  keras.utils.set_random_seed(0)
  with strategy.scope():
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                            keras.layers.Dense(3)])
    optimizer = optimizer_class(learning_rate=0.01, **kwargs)
    optimizer.build(net.trainable_variables)
  x = tf.random.stateless_normal([8, 6], seed=[1, 2])
  y = tf.random.stateless_normal([8, 3], seed=[3, 4])

  def step():
    context = tf.distribute.get_replica_context()
    rows = 8 // context.num_replicas_in_sync
    begin = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum((net(x[begin:begin + rows]) - y[begin:begin + rows]) ** 2) / 8
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))

  @tf.function
  def loop():
    for _ in range(steps):
      strategy.run(step)

  loop()
  return [v.numpy() for v in net.trainable_variables + optimizer.variables]


@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.parametrize("kwargs", [{}, {"global_clipnorm": 0.1}, {"amsgrad": True}],
                         ids=["plain", "clipped", "amsgrad"])
@pytest.mark.slow
def test_fused_adam_takes_keras_adams_steps(devices, kwargs):
  # ReductionToOneDevice: no collective ops, whose instance keys can clash with those of the
  # MirroredStrategy objects other tests created in this process.
  strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)],
                                            tf.distribute.ReductionToOneDevice())
  expected = _train(keras.optimizers.Adam, strategy, 10, **kwargs)
  fused = _train(fused_adam.FusedAdam, strategy, 10, **kwargs)
  assert len(fused) == len(expected) > 4
  moved = np.abs(expected[0] - _train(keras.optimizers.Adam, strategy, 0, **kwargs)[0]).max()
  assert moved > 0.01  # the steps did move the weights
  for a, b in zip(expected, fused):
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=1e-5)


def test_fused_adam_restores_a_keras_adam_checkpoint(tmp_path):
  variable = keras.Variable(np.ones(4, np.float32))
  adam = keras.optimizers.Adam(0.1)
  adam.build([variable])
  adam.apply_gradients([(tf.constant([1.0, -2.0, 3.0, 0.5]), variable)])
  path = tf.train.Checkpoint(optimizer=adam).write(str(tmp_path / "ckpt"))
  fused = fused_adam.FusedAdam(0.1)
  fused.build([keras.Variable(np.zeros(4, np.float32))])
  tf.train.Checkpoint(optimizer=fused).read(path).assert_consumed()
  for a, b in zip(adam.variables, fused.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
