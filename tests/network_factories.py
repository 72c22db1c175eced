"""Network factories for the tests of --encoder/--decoder=module:function
(tests/test_network_factories.py): f(data_shape, latent_dim) -> keras.Model. The tests run
`python -m tfvae.train --encoder=network_factories:encoder` with this folder on PYTHONPATH."""

import keras
import numpy as np


@keras.saving.register_keras_serializable("network_factories")
class Halve(keras.layers.Layer):
  """x -> x / 2: a custom class, so that a run's stored encoder loads only where this module
  was imported (registered)."""

  def call(self, x):
    return 0.5 * x


def encoder(data_shape, latent_dim):
  """x [B, H, W, C] (a stride-2 conv) or [B, D] -> features [B, 32]."""
  del latent_dim  # tfvae adds the posterior head
  body = ([keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                               name="factory_conv"), keras.layers.Flatten()]
          if len(data_shape) == 3 else [])
  return keras.Sequential([keras.Input(data_shape), *body,
                           keras.layers.Dense(32, activation="relu", name="factory_features"),
                           Halve(name="factory_halve")], name="factory_encoder")


def decoder(data_shape, latent_dim):
  """z [B, latent_dim] -> the likelihood's parameters [B, *data_shape]."""
  return keras.Sequential([keras.Input((latent_dim,)),
                           keras.layers.Dense(32, activation="relu", name="factory_hidden"),
                           keras.layers.Dense(int(np.prod(data_shape)), name="factory_params"),
                           keras.layers.Reshape(tuple(data_shape))], name="factory_decoder")


def any_width_decoder(data_shape, latent_dim):
  """Inputs of any width (built on its first call: hvae's [z1, z2], m2's [z, y_onehot]) ->
  the likelihood's parameters [B, *data_shape]."""
  del latent_dim
  return keras.Sequential([keras.layers.Dense(32, activation="relu", name="factory_hidden"),
                           keras.layers.Dense(int(np.prod(data_shape)), name="factory_params"),
                           keras.layers.Reshape(tuple(data_shape))], name="factory_decoder")


def not_a_model(data_shape, latent_dim):
  del data_shape, latent_dim
  return "a string"


def raises(data_shape, latent_dim):
  raise ValueError(f"no network for {data_shape} and {latent_dim}")


NOT_CALLABLE = 3
