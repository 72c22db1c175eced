import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import decoders
from tfvae import networks

SHAPES = [(28, 28, 1), (8, 8, 1), (32, 32, 3)]


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "normal", "normal_per_pixel", "laplace",
                                        "continuous_bernoulli"])
def test_distribution_shapes(architecture, image_shape, likelihood):
  batch, latent_dim, num_samples = 5, 3, 4
  kwargs = dict(architecture=architecture, hidden_sizes=(16,), conv_filters=(4, 8, 8))
  encoder = networks.Encoder(image_shape, latent_dim, **kwargs)
  decoder = decoders.Decoder(image_shape, latent_dim, likelihood=likelihood, **kwargs)
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
  decoder = decoders.Decoder((8, 8, 1), 2, likelihood="normal", hidden_sizes=(4,))
  p_x = decoder(tf.zeros([3, 2]))
  assert decoder.raw_scale in decoder.trainable_variables
  np.testing.assert_allclose(p_x.stddev(), np.full([3, 8, 8, 1],
                                                   1.0 + decoders.MIN_LIKELIHOOD_SCALE),
                             rtol=1e-5)


def _raw_scale_gradient(decoder, grads):
  index = [v.path for v in decoder.trainable_variables].index(decoder.raw_scale.path)
  return grads[index]


def test_fit_scale_is_the_batch_rmse_and_its_loss_the_closed_form():
  """sigma-VAE: sigma^2 = the mean squared error over samples, examples and pixels; the
  loss at it is N/2 (1 + log(2 pi sigma^2)); raw_scale gets an exact zero gradient."""
  decoder = decoders.Decoder((8, 8, 1), 2, likelihood="normal", hidden_sizes=(4,))
  assert decoder.calibrated
  z = tf.random.stateless_normal([3, 5, 2], [1, 2])
  x = tf.random.stateless_uniform([5, 8, 8, 1], [3, 4])
  with tf.GradientTape() as tape:
    p_x, mse = decoder.fit_scale(decoder(z, training=True), x)
    loss = -tf.reduce_sum(p_x.log_prob(x))
  grads = tape.gradient(loss, decoder.trainable_variables)
  loc = decoder(z).mean().numpy()
  per_example = ((x.numpy() - loc) ** 2).mean(axis=(0, 2, 3, 4))
  np.testing.assert_allclose(mse, per_example, rtol=1e-5)
  sigma = np.sqrt(per_example.mean())
  np.testing.assert_allclose(p_x.distribution.scale, sigma, rtol=1e-5)
  assert p_x.batch_shape == [3, 5] and p_x.event_shape == [8, 8, 1]
  np.testing.assert_allclose(loss, 3 * 5 * 64 / 2 * (1 + np.log(2 * np.pi * sigma**2)),
                             rtol=1e-5)
  raw = _raw_scale_gradient(decoder, grads)
  assert raw is not None and float(raw) == 0.0


def test_fit_scale_gives_the_gradient_of_the_exact_minimum_over_sigma():
  """With sigma held fixed at the batch optimum, the network's gradient equals that of
  min_sigma -log p(x|z) = N/2 (1 + log(2 pi mse(theta))) (the derivative in sigma is 0)."""
  decoder = decoders.Decoder((8, 8, 1), 2, likelihood="normal", hidden_sizes=(4,))
  z = tf.random.stateless_normal([3, 5, 2], [5, 6])
  x = tf.random.stateless_uniform([5, 8, 8, 1], [7, 8])
  net = decoder.net.trainable_variables
  with tf.GradientTape(persistent=True) as tape:
    p_x = decoder(z, training=True)
    fitted = -tf.reduce_sum(decoder.fit_scale(p_x, x)[0].log_prob(x))
    mse = tf.reduce_mean(tf.square(x - p_x.mean()))
    exact = 3 * 5 * 64 / 2 * (1 + tf.math.log(2 * np.pi * mse))
  for a, b in zip(tape.gradient(fitted, net), tape.gradient(exact, net)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fit_scale_of_vectors_is_one_per_feature():
  decoder = decoders.Decoder((6,), 2, likelihood="normal", hidden_sizes=(4,))
  z = tf.random.stateless_normal([4, 10, 2], [1, 2])
  x = tf.random.stateless_normal([10, 6], [3, 4])
  p_x, mse = decoder.fit_scale(decoder(z), x)
  per_example = ((x.numpy() - decoder(z).mean().numpy()) ** 2).mean(0)  # [B, D]
  np.testing.assert_allclose(mse, per_example, rtol=1e-5)
  np.testing.assert_allclose(p_x.distribution.scale, np.sqrt(per_example.mean(0)), rtol=1e-5)


def test_update_scale_keeps_a_moving_average_of_the_fitted_variance():
  decoder = decoders.Decoder((8, 8, 1), 2, likelihood="normal", hidden_sizes=(4,))
  decoder.update_scale(tf.constant(0.04), tf.constant(0, tf.int64))  # step 0 sets it
  np.testing.assert_allclose(decoder.scale(), 0.2, rtol=1e-5)
  decoder.update_scale(tf.constant(0.01), tf.constant(20, tf.int64))
  decay = 20 / 30
  np.testing.assert_allclose(decoder.scale() ** 2, decay * 0.04 + (1 - decay) * 0.01, rtol=1e-5)
  decoder.update_scale(tf.constant(0.01), tf.constant(10**6, tf.int64))
  previous = decay * 0.04 + (1 - decay) * 0.01
  np.testing.assert_allclose(decoder.scale() ** 2,
                             decoders.SCALE_DECAY * previous + (1 - decoders.SCALE_DECAY) * 0.01,
                             rtol=1e-5)
  assert decoder(tf.zeros([2, 2])).distribution.scale.numpy() == pytest.approx(
      float(decoder.scale()))
  decoder.set_scale(tf.constant(0.09))  # a held-out fit (Model.calibrate) sets it outright
  np.testing.assert_allclose(decoder.scale(), 0.3, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["laplace", "negative_binomial", "bernoulli"])
def test_other_likelihoods_are_not_calibrated(likelihood):
  shape = (6,) if likelihood == "negative_binomial" else (8, 8, 1)
  decoder = decoders.Decoder(shape, 2, likelihood=likelihood, hidden_sizes=(4,))
  p_x = decoder(tf.zeros([3, 2]))
  assert not decoder.calibrated and decoder.fit_scale(p_x, tf.zeros([3, *shape])) == (p_x, None)


def test_deterministic_encoder_is_a_point_mass_at_the_code():
  encoder = networks.Encoder((8, 8, 1), 3, hidden_sizes=(4,), stochastic=False)
  x = tf.random.stateless_uniform([5, 8, 8, 1], [0, 1])
  q_z = encoder(x)
  assert q_z.batch_shape == [5] and q_z.event_shape == [3]
  np.testing.assert_allclose(q_z.sample(seed=[1, 2]), q_z.mean())
  np.testing.assert_array_equal(q_z.stddev(), np.zeros([5, 3]))
  assert encoder.head.units == 3  # one output per code dimension, no scale


def _decoder_output(decoder, z):
  """The network's raw output (logits or loc) for z."""
  return decoder.net(z).numpy()


def test_likelihood_log_probs_match_their_closed_forms():
  keras.utils.set_random_seed(0)  # fixed weights: the float32 tolerance holds for these
  z = tf.random.stateless_normal([2, 3], [3, 4])
  x = tf.random.stateless_uniform([2, 8, 8, 1], [5, 6], minval=0.01, maxval=0.99)
  xn = x.numpy()
  for likelihood in ("bernoulli", "continuous_bernoulli", "normal", "laplace",
                     "normal_per_pixel"):
    decoder = decoders.Decoder((8, 8, 1), 3, likelihood=likelihood, hidden_sizes=(8,))
    out = _decoder_output(decoder, z).reshape(2, 8, 8, -1)
    got = decoder(z).log_prob(x).numpy()
    if likelihood in ("bernoulli", "continuous_bernoulli"):
      p = 1 / (1 + np.exp(-out[..., :1]))
      per_pixel = xn * np.log(p) + (1 - xn) * np.log1p(-p)  # Bernoulli (cross-entropy form)
      if likelihood == "continuous_bernoulli":  # + log C(p), C = 2 atanh(1 - 2p) / (1 - 2p)
        per_pixel += np.log(2 * np.arctanh(1 - 2 * p) / (1 - 2 * p))
    else:
      if likelihood == "normal_per_pixel":
        loc, scale = out[..., :1], np.log1p(np.exp(out[..., 1:])) + decoders.MIN_LIKELIHOOD_SCALE
      else:
        loc = out
        scale = np.log1p(np.exp(decoder.raw_scale.numpy())) + decoders.MIN_LIKELIHOOD_SCALE
      if likelihood == "laplace":
        per_pixel = -np.abs(xn - loc) / scale - np.log(2 * scale)
      else:
        per_pixel = -0.5 * ((xn - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(got, per_pixel.sum(axis=(1, 2, 3)), rtol=2e-5,
                               err_msg=likelihood)


def test_bernoulli_log_prob_and_gradient_match_tfp_and_float64():
  logits = np.concatenate([np.linspace(-40, 40, 801), [-1e-3, 0.0, 1e-3]]).astype(np.float32)
  logits = np.stack([logits] * 4)
  x = np.zeros_like(logits)
  x[1], x[2], x[3] = 1.0, 0.5, 0.01  # binary pixels and the fractions of a continuous target
  exact = x * logits.astype(np.float64) - np.logaddexp(0.0, logits.astype(np.float64))
  variable = tf.Variable(logits)
  with tf.GradientTape(persistent=True) as tape:
    ours = decoders.Bernoulli(logits=variable, dtype=tf.float32).log_prob(x)
    tfps = networks.tfd.Bernoulli(logits=variable, dtype=tf.float32).log_prob(x)
  np.testing.assert_allclose(ours, exact, rtol=1e-6, atol=5e-6)
  np.testing.assert_allclose(ours, tfps, rtol=1e-6, atol=5e-6)
  np.testing.assert_allclose(tape.gradient(ours, variable), x - 1 / (1 + np.exp(-logits)),
                             atol=1e-6)
  np.testing.assert_allclose(tape.gradient(ours, variable), tape.gradient(tfps, variable),
                             atol=1e-6)
  decoder = decoders.Decoder((8, 8, 1), 3, likelihood="bernoulli", hidden_sizes=(8,))
  assert isinstance(decoder(tf.zeros([2, 3])).distribution, decoders.Bernoulli)


def test_normal_per_pixel_scales_vary_and_stay_above_the_floor():
  decoder = decoders.Decoder((8, 8, 1), 3, likelihood="normal_per_pixel", hidden_sizes=(8,))
  scale = decoder(tf.random.stateless_normal([4, 3], [1, 1])).distribution.scale.numpy()
  assert scale.shape == (4, 8, 8, 1)
  assert np.all(scale >= decoders.MIN_LIKELIHOOD_SCALE) and np.std(scale) > 0


@pytest.mark.parametrize("logit", [-6.0, -1.0, 0.0, 0.3, 4.0])
def test_continuous_bernoulli_integrates_to_one_over_the_unit_interval(logit):
  decoder = decoders.Decoder((1, 1, 1), 1, likelihood="continuous_bernoulli", hidden_sizes=(2,))
  head = decoder.net.layers[-2]  # Dense(1) before the Reshape: set weights so logits = `logit`
  head.kernel.assign(tf.zeros_like(head.kernel))
  head.bias.assign(tf.fill(head.bias.shape, logit))
  grid = np.linspace(0, 1, 20001, dtype=np.float32)
  density = np.exp(decoder(tf.zeros([1, 1])).distribution.log_prob(
      grid.reshape(-1, 1, 1, 1)).numpy()).ravel()
  np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, rtol=1e-4)


def test_count_likelihoods_of_vectors_match_scipy():
  """Poisson and negative binomial decoders of vectors [D]: log_prob against scipy.stats, the
  negative binomial's mean exp(out) and variance mean + dispersion * mean^2 (one per feature)."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  z = tf.random.stateless_normal([4, 2], [1, 2])
  x = np.array([[0, 1, 2, 7, 3]] * 4, np.float32)
  for likelihood in ("poisson", "negative_binomial"):
    decoder = decoders.Decoder((5,), 2, likelihood=likelihood, hidden_sizes=(8,))
    mean = np.exp(decoder.net(z).numpy())
    p_x = decoder(z)
    assert p_x.event_shape == [5] and p_x.batch_shape == [4]
    if likelihood == "poisson":
      expected = stats.poisson.logpmf(x, mean).sum(-1)
    else:
      decoder.raw_scale.assign(np.linspace(-1, 1, 5).astype(np.float32))
      p_x = decoder(z)
      dispersion = np.log1p(np.exp(decoder.raw_scale.numpy())) + decoders.MIN_LIKELIHOOD_SCALE
      np.testing.assert_allclose(p_x.distribution.variance(), mean + dispersion * mean**2,
                                 rtol=1e-4)
      n = 1 / dispersion
      expected = stats.nbinom.logpmf(x, n, n / (n + mean)).sum(-1)
    np.testing.assert_allclose(p_x.mean(), mean, rtol=1e-5)
    np.testing.assert_allclose(p_x.log_prob(x), expected, rtol=1e-4, err_msg=likelihood)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "normal", "laplace",
                                        "normal_per_pixel"])
def test_every_likelihood_runs_under_mixed_bfloat16_with_float32_parameters(likelihood):
  z = tf.random.stateless_normal([4, 3], [1, 2])
  x = tf.random.stateless_uniform([4, 8, 8, 1], [3, 4], minval=0.05, maxval=0.95)
  if likelihood == "bernoulli":
    x = tf.round(x)
  keras.utils.set_random_seed(0)
  try:
    keras.config.set_dtype_policy("mixed_bfloat16")
    low = decoders.Decoder((8, 8, 1), 3, likelihood=likelihood, hidden_sizes=(16,))
    p_low = low(z)
  finally:
    keras.config.set_dtype_policy("float32")
  full = decoders.Decoder((8, 8, 1), 3, likelihood=likelihood, hidden_sizes=(16,))
  full(z)
  assert [v.dtype for v in low.weights] == [tf.float32] * len(full.weights)
  for a, b in zip(full.weights, low.weights):
    a.assign(b)
  assert p_low.dtype == tf.float32
  got, expected = p_low.log_prob(x).numpy(), full(z).log_prob(x).numpy()
  assert np.all(np.isfinite(got))
  # bfloat16 compute (8-bit significands): ~3 digits; atol for sums of 64 pixels near 0.
  np.testing.assert_allclose(got, expected, rtol=0.02, atol=0.02)
