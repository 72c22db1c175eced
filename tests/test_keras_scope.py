"""Building a model or a Trainer leaves the caller's process as it was (tfvae/keras_scope.py):
Keras's dtype policy and seed generator, Python's, NumPy's and TensorFlow's random state."""

import random

import keras
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
import numpy as np
import tensorflow as tf

from tfvae import config as config_lib
from tfvae import keras_scope
from tfvae import models
from tfvae.training import trainer as trainer_lib


def _process_state():
  generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
  return (keras.config.dtype_policy().name, id(generator),
          None if generator is None else tuple(generator.state.numpy()),
          random.getstate(), repr(np.random.get_state()),
          tf.random.uniform([4], seed=None).shape)  # draws: the op itself must still work


def _config(**kwargs):
  return config_lib.Config(hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1), **kwargs)


def test_building_restores_the_policy_and_generator_and_seeds_the_weights():
  keras.random.normal([2])  # the caller has a global generator in use
  before = _process_state()
  with keras_scope.building("mixed_bfloat16", seed=3):
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    first = keras.layers.Dense(4)
    first.build((None, 5))
  assert _process_state()[:5] == before[:5]
  with keras_scope.building("float32", seed=3):
    second = keras.layers.Dense(4)
    second.build((None, 5))
  np.testing.assert_array_equal(first.kernel.numpy(), second.kernel.numpy())
  assert first.dtype_policy.name == "mixed_bfloat16" and second.dtype_policy.name == "float32"


def test_models_build_and_the_trainer_leave_the_process_as_they_found_it():
  random.seed(123)
  np.random.seed(123)
  keras.config.set_dtype_policy("float32")
  before = _process_state()
  model = models.build(_config(dtype_policy="mixed_bfloat16"), seed=5)
  assert model.decoder.dtype_policy.name == "mixed_bfloat16"
  trainer = trainer_lib.Trainer(_config(seed=5), tf.distribute.get_strategy())
  assert _process_state()[:5] == before[:5]
  # Python's and NumPy's next numbers are those the caller's seeds give.
  assert random.random() == random.Random(123).random()
  assert np.random.rand() == np.random.RandomState(123).rand()
  # The weights follow config.training.seed alone.
  again = trainer_lib.Trainer(_config(seed=5), tf.distribute.get_strategy())
  other = trainer_lib.Trainer(_config(seed=6), tf.distribute.get_strategy())
  for a, b, c in zip(trainer.model.trainable_variables, again.model.trainable_variables,
                     other.model.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert any(not np.array_equal(a.numpy(), c.numpy())
             for a, c in zip(trainer.model.trainable_variables,
                             other.model.trainable_variables))
