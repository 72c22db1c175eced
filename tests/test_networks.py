import numpy as np
import pytest
import tensorflow as tf

from tfvae import networks

SHAPES = [(28, 28, 1), (8, 8, 1), (32, 32, 3)]


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "normal"])
def test_distribution_shapes(architecture, image_shape, likelihood):
  batch, latent_dim, num_samples = 5, 3, 4
  kwargs = dict(architecture=architecture, hidden_sizes=(16,), conv_filters=(4, 8, 8))
  encoder = networks.Encoder(image_shape, latent_dim, **kwargs)
  decoder = networks.Decoder(image_shape, latent_dim, likelihood=likelihood, **kwargs)
  x = tf.cast(tf.random.stateless_uniform([batch, *image_shape], [0, 1]) < 0.5, tf.float32)
  q_z = encoder(x)
  assert q_z.batch_shape == [batch] and q_z.event_shape == [latent_dim]
  assert np.all(q_z.stddev().numpy() >= networks.MIN_POSTERIOR_SCALE)
  p_x = decoder(q_z.sample(num_samples, seed=[1, 2]))
  assert p_x.batch_shape == [num_samples, batch] and p_x.event_shape == list(image_shape)
  log_prob = p_x.log_prob(x)
  assert log_prob.shape == [num_samples, batch] and np.all(np.isfinite(log_prob))
  assert p_x.mean().shape == [num_samples, batch, *image_shape]


def test_normal_likelihood_has_one_learned_scale():
  decoder = networks.Decoder((8, 8, 1), 2, likelihood="normal", hidden_sizes=(4,))
  p_x = decoder(tf.zeros([3, 2]))
  assert decoder.raw_scale in decoder.trainable_variables
  np.testing.assert_allclose(p_x.stddev(), np.full([3, 8, 8, 1], 1.0 + networks.MIN_LIKELIHOOD_SCALE),
                             rtol=1e-5)
