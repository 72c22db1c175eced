"""The reference a Keras user writes: a VAE as a `keras.Model` with a custom `train_step`, trained
with `model.fit` (after the Keras example "Variational AutoEncoder", keras.io/examples/generative/vae).

Used by tools/benchmark.py to time tfvae against it. It is deliberately plain Keras 3: Dense or
Conv2D layers, a sampling step z = mean + exp(log_var / 2) * eps, the Bernoulli negative
log-likelihood (binary cross-entropy on logits, summed over pixels), the analytic KL to N(0, I),
`compile()` with its defaults (jit_compile="auto", which is XLA on the TensorFlow backend) and
`fit(x, batch_size=..., shuffle=True)`. Same architecture and objective as tfvae's `--model=vae
--likelihood=bernoulli --binarization=dynamic`: pixels are binarized afresh every step in
`train_step` (x ~ Bernoulli(gray level)).
"""

import keras
import tensorflow as tf


def _encoder(image_shape, latent_dim, architecture, hidden_sizes, conv_filters):
  inputs = keras.Input(image_shape)
  h = inputs
  if architecture == "mlp":
    h = keras.layers.Flatten()(h)
    for size in hidden_sizes:
      h = keras.layers.Dense(size, activation="relu")(h)
  else:
    for filters in conv_filters:
      h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
  # Outputs in float32 (the Keras mixed-precision guide's advice; a no-op in float32).
  z_mean = keras.layers.Dense(latent_dim, dtype="float32")(h)
  z_log_var = keras.layers.Dense(latent_dim, dtype="float32")(h)
  return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def _decoder(image_shape, latent_dim, architecture, hidden_sizes, conv_filters):
  height, width, channels = image_shape
  inputs = keras.Input((latent_dim,))
  h = inputs
  if architecture == "mlp":
    for size in reversed(hidden_sizes):
      h = keras.layers.Dense(size, activation="relu")(h)
    logits = keras.layers.Reshape(image_shape, dtype="float32")(
        keras.layers.Dense(height * width * channels, dtype="float32")(h))
  else:
    factor = 2 ** len(conv_filters)
    h0, w0 = -(-height // factor), -(-width // factor)
    h = keras.layers.Dense(h0 * w0 * conv_filters[-1], activation="relu")(h)
    h = keras.layers.Reshape((h0, w0, conv_filters[-1]))(h)
    for filters in reversed(conv_filters):
      h = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                       activation="relu")(h)
    crop_h, crop_w = h0 * factor - height, w0 * factor - width
    if crop_h or crop_w:
      h = keras.layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2),
                                   (crop_w // 2, crop_w - crop_w // 2)))(h)
    logits = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32")(h)
  return keras.Model(inputs, logits, name="decoder")


class VAE(keras.Model):
  """x float32 [B, H, W, C] in [0, 1] -> metrics loss (= -ELBO), rate (KL) and distortion, nats
  per example (Kingma & Welling 2014)."""

  def __init__(self, encoder, decoder, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.decoder = decoder
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.rate_tracker = keras.metrics.Mean(name="rate")
    self.distortion_tracker = keras.metrics.Mean(name="distortion")

  @property
  def metrics(self):
    return [self.loss_tracker, self.rate_tracker, self.distortion_tracker]

  def call(self, x):
    """Reconstruction logits at the posterior mean (Keras builds the model through it under a
    tf.distribute strategy)."""
    z_mean, _ = self.encoder(x)
    return self.decoder(z_mean)

  def _terms(self, x):
    z_mean, z_log_var = self.encoder(x)
    eps = tf.random.normal(tf.shape(z_mean))
    z = z_mean + tf.exp(0.5 * z_log_var) * eps
    logits = self.decoder(z)
    distortion = tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[1, 2, 3])
    rate = -0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)
    return tf.reduce_mean(rate), tf.reduce_mean(distortion)

  def _update(self, rate, distortion):
    self.loss_tracker.update_state(rate + distortion)
    self.rate_tracker.update_state(rate)
    self.distortion_tracker.update_state(distortion)
    return {m.name: m.result() for m in self.metrics}

  def train_step(self, data):
    x = tf.cast(tf.random.uniform(tf.shape(data)) < data, data.dtype)  # dynamic binarization
    with tf.GradientTape() as tape:
      rate, distortion = self._terms(x)
      loss = rate + distortion
    grads = tape.gradient(loss, self.trainable_weights)
    self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
    return self._update(rate, distortion)

  def test_step(self, data):
    return self._update(*self._terms(data))  # data: already binarized test images


def build(image_shape, latent_dim=32, architecture="mlp", hidden_sizes=(512, 256),
          conv_filters=(32, 64), learning_rate=1e-3):
  """A compiled reference VAE (Adam, compile defaults)."""
  args = (tuple(image_shape), latent_dim, architecture, hidden_sizes, conv_filters)
  vae = VAE(_encoder(*args), _decoder(*args))
  vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
  return vae
