"""The model interface and its capability types. Evaluation, export, summaries and figures
dispatch on these types (`isinstance`), never on `hasattr` or on methods that return None:

  Model                 every family: encode, decode, reconstruct, the per-example losses,
                        generate (images from codes a fitted sampler draws: tfvae/samplers).
  LatentVariableModel   a Model with a prior p(z) (the VAEs, hvae, pc_vae, m2): sample, elbo,
                        the importance weights of the IWAE bound, the rate weight beta(step).
                        A Model that is not one is a deterministic autoencoder (ae.py).
  Classifier            classify(x) -> q(y|x); its losses add a per-example "accuracy" when not
                        training (pc_vae, m2).
  LabelConditional      encode, decode and sample take a class y (m2, cvae): q(z|x, y) needs y,
                        so there is no posterior(x); style_transfer exists.
  Conditional           a LatentVariableModel whose encoder, decoder and prior all take a
                        condition vector c given with each example (cvae): `condition(batch)`
                        reads c, `given(c)` is the model with c fixed, a LatentVariableModel
                        (the conditional ELBO and IWAE bound, active units, rate per dimension).

Shapes: x [B, *image_shape], z [B, latent_dim], y one-hot [B, K].
"""

from typing import ClassVar

import tensorflow as tf


class Model(tf.Module):
  """What every family offers. `config_class` is the family's config dataclass
  (tfvae/models/base.py ModelConfig and its subclasses); `config` the run's tfvae.config.Config."""
  config_class: ClassVar[type]

  @classmethod
  def family_class(cls, config):
    """The class `tfvae.models.build` makes for `config` (its data resolved): `cls` itself,
    unless the family's model depends on the data (cvae: CVAE for classes, CovariateCVAE for
    real conditions)."""
    del config
    return cls

  def posterior(self, x):
    """q(z|x): batch [B], event [latent_dim] (a point mass at the code for deterministic
    autoencoders). LabelConditional models have none (q(z|x, y) needs y)."""
    raise NotImplementedError

  def encode(self, x, y_onehot=None):
    """q(z|x), or q(z|x, y) for label-conditional models (y_onehot [B, K])."""
    del y_onehot
    return self.posterior(x)

  def decode(self, z, y_onehot=None):
    """p(x|z), or p(x|z, y) for label-conditional models: batch [...], event image_shape."""
    del y_onehot
    return self.decoder(z)

  def reconstruct(self, x):
    """float32 [B, *image_shape]: the decoder mean at the posterior mean."""
    raise NotImplementedError

  def generate(self, z, seed):
    """{"mean", "sample"}: float32 [n, *image_shape], the decoder mean at codes z float32
    [n, latent_dim] and pixels x ~ p(x|z) drawn with the stateless seed int32 [2]: how a
    sampler's codes (tfvae/samplers) become images. hvae also draws z1 ~ p(z1|z2 = z)."""
    p_x = self.decode(z)
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=seed), tf.float32)}

  def reconstruct_from(self, x, q_z):
    """`reconstruct(x)` given the posterior q_z = posterior(x) the caller already has."""
    del q_z
    return self.reconstruct(x)

  def update_statistics(self, sums, step, batch_size):
    """After each train step, in cross-replica context: updates what the model keeps of the
    data beside its trained weights. Here: the scale of a calibrated `self.decoder` (the
    sigma-VAE: decoders.Decoder.update_scale) from the step's "mean_squared_error", which only such
    models return; a skipped step changes nothing.

    Args:
      sums: dict of float32 Tensors, the step's terms summed over the global batch (0 where the
        update was skipped) and "skipped" (> 0 where it was).
      step: int64 scalar, the step's index (0-based).
      batch_size: int, the global batch size.
    """
    if "mean_squared_error" not in sums:
      return
    variance = tf.where(sums["skipped"] > 0, tf.square(self.decoder.scale()),
                        sums["mean_squared_error"] / float(batch_size))  # skipped: kept
    self.decoder.update_scale(variance, step)

  @property
  def calibrated(self):
    """True when `self.decoder` has a calibrated scale (decoders.Decoder.calibrated: the
    sigma-VAE's shared normal scale), which `calibrate` fits on held-out data."""
    return False

  def calibrate(self, variance):
    """Sets the calibrated scale to the closed-form optimum on held-out data, sigma^2 =
    `variance` (Rybkin et al. 2021, sec. 4): the "mean_squared_error" of `losses(...,
    training=False)` averaged over the held-out examples, i.e. at the posterior samples the
    evaluation's ELBO uses, where that ELBO is highest. Cross-replica context.

    Args:
      variance: float32 [*S] ([] images, [D] vectors), in the data's units squared.

    Raises:
      ValueError: if the model is not `calibrated`.
    """
    if not self.calibrated:
      raise ValueError(f"{type(self).__name__} has no calibrated likelihood scale.")
    self.decoder.set_scale(variance)

  def losses(self, batch, seed, step, training=True):
    """The per-example loss terms of `losses_and_posterior` (dict of float32 [B], nats)."""
    return self.losses_and_posterior(batch, seed, step, training)[0]

  def losses_and_posterior(self, batch, seed, step, training=True):
    """(terms, posterior): per-example loss terms (dict of float32 [B], nats; "loss" is
    minimized, "distortion" is -log p(x|z)) and the q(z|x) the encoder gave for batch["image"]
    (None for LabelConditional models), computed with one encoder pass."""
    raise NotImplementedError


class LatentVariableModel(Model):
  """A Model with a prior p(z): samples, an ELBO and importance sampling exist."""

  def prior(self):
    """p(z): a distribution with event [latent_dim]."""
    raise NotImplementedError

  def beta(self, step):
    """The rate weight at `step` (float32 scalar Tensor); 1 unless the family schedules it."""
    del step
    return tf.constant(1.0)

  @property
  def noise_dim(self):
    """Standard normal numbers per posterior sample (latent_dim; both layers for hvae)."""
    return self.config.model.latent_dim

  def log_weight_terms(self, x, q_z, eps, training=False):
    """{"z": [L, B, D], "log_likelihood", "log_prior", "log_posterior": float32 [L, B]} at the
    posterior samples drawn from standard normal noise eps [L, B, noise_dim] (what the
    importance-weighted bound sums)."""
    raise NotImplementedError

  def rate_per_dimension(self, q_z, seed, index=None):
    """KL(q(z_d|x) || p(z_d)) per latent dimension, float32 [B, D] nats, or None where the
    posterior has no tractable marginals (a flow)."""
    del q_z, seed, index
    return None

  def sample(self, n, seed, label=None):
    """n draws {"mean", "sample"} [n, *image_shape] from the model (and "label" [n] int64 for
    label-conditional ones: label < 0 or None draws y ~ p(y), else that class; the cvae on
    real conditions takes sample(n, seed, condition) instead, c [n, C] or [C])."""
    raise NotImplementedError

  def elbo(self, x, seed):
    """{"elbo", "rate", "distortion"}: float32 [B], nats, with the config's num_samples and a
    stateless seed (what the exported `elbo` signature returns)."""
    raise NotImplementedError


class Classifier:
  """A model with a classifier q(y|x) (a mixin of Model subclasses)."""

  def classify(self, x):
    """q(y|x), a tfd.Categorical with batch [B]."""
    raise NotImplementedError


class LabelConditional:
  """A model whose encoder and decoder take a class (a mixin of Model subclasses): `num_classes`
  K, encode(x, y_onehot), decode(z, y_onehot), sample(n, seed, label)."""
  num_classes: int

  def style_transfer(self, x):
    """The code of each image decoded with every class, float32 [B, K, *image_shape] (a
    Conditional model takes the images' classes too: style_transfer(x, y_onehot))."""
    raise NotImplementedError


class Conditional:
  """A latent-variable model whose encoder, decoder and prior all take a condition vector
  c [B, C] given with each example: q(z|x, c), p(x|z, c), p(z|c) (a mixin of
  LatentVariableModel subclasses; cvae, Sohn et al. 2015). There is no q(z|x) and no
  reconstruct(x) without c: reconstruct(x, c) and elbo(x, seed, c) take it.

  Evaluation, export and TrainedModel work on `given(c)`: the model with c fixed, an
  unconditional LatentVariableModel (posterior, prior p(z|c) with batch [B],
  log_weight_terms, elbo, reconstruct_from, rate_per_dimension), so the ELBO, the IWAE bound
  (importance sampling with the conditional prior), active units and the per-dimension rate
  are those given c.
  """
  condition_dim: int

  def condition(self, batch):
    """c float32 [B, C] of a batch (cvae: the one-hot of batch["label"], or batch["condition"]
    for data with real conditions)."""
    raise NotImplementedError

  def given(self, c):
    """The model with c float32 [B, C] fixed (row i of x goes with row i of c)."""
    raise NotImplementedError

  def sample_given(self, c, seed):
    """One draw {"mean", "sample"} [n, *image_shape] per row of c [n, C], z ~ p(z|c)."""
    raise NotImplementedError
