"""The model interface every family declares (`Model`), and what encoder/decoder models share:
their config (`ModelConfig`: the networks' knobs every family's config extends;
`SemiSupervisedConfig` for families trained on labeled and unlabeled batches) and the networks
(`EncoderDecoder`: both built from the config, their variables in a fixed order)."""

import dataclasses
from typing import ClassVar

import tensorflow as tf

from tfvae import config_fields
from tfvae import networks
from tfvae import user_networks
from tfvae.config_fields import DATA, MODEL, field
from tfvae.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The knobs of the encoder and decoder networks, which every family's config extends with
  its own (`VAEConfig` in tfvae/models/vae.py, ...). `family` is the registry name
  (tfvae/models/__init__.py) and the value of --model.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family: ClassVar[str] = ""
  architecture: str = field(
      "mlp", MODEL,
      "Encoder/decoder networks: mlp (Dense + ReLU), gated_mlp (GatedDense layers h = "
      "Linear(x) * sigmoid(Linear(x)), Dauphin et al. 2017, as in the VampPrior code of "
      "Tomczak & Welling 2018) or conv.",
      choices=('mlp', 'gated_mlp', 'conv'))
  hidden_sizes: tuple[int, ...] = field(
      (256, 128), MODEL,
      "Comma-separated hidden layer widths of the MLP (decoder mirrors encoder).")
  conv_filters: tuple[int, ...] = field(
      (32, 64), MODEL,
      "Comma-separated filters of the stride-2 conv layers (decoder mirrors encoder).")
  latent_dim: int = field(
      16, MODEL,
      "Dimension D of the latent code z.")
  likelihood: str = field(
      "bernoulli", MODEL,
      "Decoder distribution p(x|z): bernoulli (binary pixels); normal with one learned scale;"
      " normal_per_pixel (loc and scale per pixel); laplace with one learned scale (the L1 "
      "loss); continuous_bernoulli (a density on [0,1], Loaiza-Ganem & Cunningham 2019); for "
      "vectors also poisson and negative_binomial (counts; a learned dispersion per feature);"
      " normal and laplace then learn one scale per feature. Deterministic AEs use it as "
      "their reconstruction loss.",
      choices=('bernoulli', 'normal', 'normal_per_pixel', 'laplace', 'continuous_bernoulli', 'poisson', 'negative_binomial'))

  def __post_init__(self):
    config_fields.normalize(self)
    self.check()

  def check(self):
    """Raises ConfigError for values of this config that cannot run (subclasses add theirs)."""
    config_fields.check_at_least(self, 1, "latent_dim")
    for name in ("hidden_sizes", "conv_filters"):
      sizes = getattr(self, name)
      if not sizes or any(s < 1 for s in sizes):
        raise ConfigError(f"--{name}={','.join(map(str, sizes))} must be positive integers.")

  def check_with(self, config):
    """Raises ConfigError for a value that cannot run with the rest of the run's Config
    `config` (tfvae.config.Config); the default has nothing to check."""
    del config

  def warmup_end(self):
    """The step from which the loss keeps its final weights (0: from the start)."""
    return 0

  def inactive(self, config):
    """{name: the flag that makes it have no effect} of the knobs this run does not read, given
    the run's Config `config` (e.g. {"conv_filters": "--architecture=mlp"})."""
    del config
    return {} if self.architecture == "conv" else {
        "conv_filters": f"--architecture={self.architecture}"}


@dataclasses.dataclass(frozen=True)
class SemiSupervisedConfig:
  """The knob of families trained on mixed labeled and unlabeled batches (m2, pc_vae; their
  data come from tfvae.data.TrainBatches). A mixin of their configs."""
  labeled_batch_size: int = field(
      32, DATA,
      "m2/pc_vae with --num_labels=N: rows of each global batch of --batch_size drawn from "
      "the N labeled examples (repeated); the other rows are unlabeled train images.")

  def check_with(self, config):
    if self.labeled_batch_size < 1 or (
        config.data.labels_known is not None
        and not self.labeled_batch_size < config.training.batch_size):
      raise ConfigError(f"--labeled_batch_size={self.labeled_batch_size} must be in [1, "
                        f"--batch_size={config.training.batch_size}) for --model={self.family}.")
    super().check_with(config)  # type: ignore[misc]

  def inactive(self, config):
    inactive = super().inactive(config)  # type: ignore[misc]
    if config.data.num_labels == "all":
      inactive["labeled_batch_size"] = "--num_labels=all"
    return inactive


def log_likelihood(decoder, p_x, x, training):
  """{"log_likelihood": log p(x|z) float32 [..., B]} of a networks.Decoder's output p_x. Where
  the decoder is calibrated (the sigma-VAE) also "mean_squared_error" [B, *S]
  (networks.Decoder.squared_error), and in training p(x|z) has the batch's fitted scale
  (networks.Decoder.fit_scale; the trainer sums the error and calls `Model.update_statistics`);
  in evaluation the stored one (`Model.calibrate` fits it on held-out data)."""
  if training:
    p_x, squared_error = decoder.fit_scale(p_x, x)
  else:
    squared_error = decoder.squared_error(p_x, x)
  out = {"log_likelihood": p_x.log_prob(x)}
  if squared_error is not None:
    out["mean_squared_error"] = squared_error
  return out


class Model(tf.Module):
  """What a model offers. Evaluation, export, summaries and figures ask these, never `hasattr`;
  a family overrides what it has. Shapes: x [B, *image_shape], z [B, latent_dim], y one-hot
  [B, K] (label-conditional models only).

  Declarations (defaults here):
    prior() -> p(z) or None. None: a deterministic autoencoder; `generative` is False and there
      is no sample, ELBO or importance-weighted bound.
    has_classifier -> bool: classify(x) -> tfd.Categorical q(y|x) exists (pc_vae, m2).
    label_classes -> int K > 0 when encode/decode/sample take a class y (m2); `posterior(x)` is
      then None (q(z|x, y) needs y) and `style_transfer(x)` exists.
    beta(step) -> the scheduled rate weight, or None for families without one.
    noise_dim, log_weight_terms(x, q_z, eps) -> the log-densities at posterior samples drawn
      from standard normal noise [L, B, noise_dim] (generative models; what the importance-
      weighted bound sums), rate_per_dimension(q_z, seed) -> [B, D] or None.
  """
  config_class: ClassVar[type] = ModelConfig  # the family's config (config.family's class)
  has_classifier = False
  label_classes = 0

  def prior(self):
    """p(z): a distribution with event [latent_dim], or None (deterministic autoencoders)."""
    return None

  @property
  def generative(self):
    """True when the model has a prior p(z): samples, an ELBO and importance sampling exist."""
    return self.prior() is not None

  def beta(self, step):
    """The rate weight at `step` (float32 scalar Tensor), or None when the family has none."""
    del step
    return None

  @property
  def noise_dim(self):
    """Standard normal numbers per posterior sample (latent_dim; both layers for hvae)."""
    return self.config.model.latent_dim

  def log_weight_terms(self, x, q_z, eps, training=False):
    """{"z": [L, B, D], "log_likelihood", "log_prior", "log_posterior": float32 [L, B]} at the
    posterior samples drawn from eps [L, B, noise_dim] (generative models only)."""
    raise NotImplementedError(f"{type(self).__name__} has no density over codes.")

  def rate_per_dimension(self, q_z, seed, index=None):
    """KL(q(z_d|x) || p(z_d)) per latent dimension, float32 [B, D] nats, or None."""
    del q_z, seed, index
    return None

  def classify(self, x):
    """q(y|x), a tfd.Categorical with batch [B] (only where has_classifier)."""
    raise NotImplementedError(f"{type(self).__name__} has no classifier.")

  def posterior(self, x):
    """q(z|x) (batch [B], event [latent_dim]), or None where it needs a class (label_classes)."""
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

  def reconstruct_from(self, x, q_z):
    """`reconstruct(x)` given the posterior q_z = posterior(x) the caller already has."""
    del q_z
    return self.reconstruct(x)

  def sample(self, n, seed, label=None):
    """n draws {"mean", "sample"} [n, *image_shape] from the generative model (and "label" [n]
    int64 for label-conditional ones: label < 0 or None draws y ~ p(y), else that class)."""
    raise NotImplementedError

  def elbo(self, x, seed):
    """{"elbo", "rate", "distortion"}: float32 [B], nats, with the config's num_samples and a
    stateless seed (what the exported `elbo` signature returns); generative models only."""
    raise NotImplementedError

  def style_transfer(self, x):
    """Label-conditional models: the code of each image decoded with every class,
    float32 [B, K, *image_shape]."""
    raise NotImplementedError

  def update_statistics(self, sums, step, batch_size):
    """After each train step, in cross-replica context: updates what the model keeps of the
    data beside its trained weights. Here: the scale of a calibrated `self.decoder` (the
    sigma-VAE: networks.Decoder.update_scale) from the step's "mean_squared_error", which only such
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
    """True when `self.decoder` has a calibrated scale (networks.Decoder.calibrated: the
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
    minimized) and the q(z|x) the encoder gave for batch["image"] (None where it needs a class),
    computed with one encoder pass. Implemented by each family."""
    raise NotImplementedError


class EncoderDecoder(Model):
  """An encoder x [B, H, W, C] (or vectors [B, D]) -> distribution over codes and a decoder
  codes -> p(x|z).

  Args:
    config: tfvae.config.Config; uses image_shape, latent_dim, architecture, hidden_sizes,
      conv_filters and likelihood.
    stochastic: True for q(z|x) = MultivariateNormalDiag, False for a point mass at the code.
    name: the module's name.

  Raises:
    ValueError: if config.data.image_shape is not [H, W, C] (images) or [D] (vectors).

  The networks are built (weights created) in the constructor, so a checkpoint can be restored
  into a fresh instance straight away. `parts` (tfvae.user_networks.Parts) replaces the
  encoder's body, the decoder's network and its likelihood with the user's Keras networks.
  """

  def __init__(self, config, stochastic, name, decoder_inputs=None, parts=None):
    super().__init__(name=name)
    parts = parts or user_networks.Parts()
    self.parts = parts
    if len(config.data.image_shape) not in (1, 3):
      raise ValueError("config.data.image_shape must be [H, W, C] or [D], got "
                       f"{config.data.image_shape}.")
    self.config = config
    sizes = dict(architecture=config.model.architecture, hidden_sizes=config.model.hidden_sizes,
                 conv_filters=config.model.conv_filters)
    self.encoder = networks.Encoder(
        config.data.image_shape, config.model.latent_dim, **sizes, stochastic=stochastic,
        # stochastic encoders are the VAEs' (a VAEConfig, which has the posterior's knobs)
        posterior_scale=config.model.posterior_scale if stochastic else "softplus",
        num_flows=(config.model.num_flows if stochastic and config.model.posterior == "iaf"
                   else 0),
        body=parts.encoder, name="encoder")
    decoder_inputs = decoder_inputs or config.model.latent_dim
    self.decoder = networks.Decoder(config.data.image_shape, decoder_inputs, **sizes,
                                    likelihood=config.model.likelihood, net=parts.decoder,
                                    likelihood_layer=parts.likelihood, name="decoder")
    self.encoder(tf.zeros([1, *config.data.image_shape]))
    self.decoder(tf.zeros([1, decoder_inputs]))
    self.prior_layer = None

  @property
  def calibrated(self):
    return self.decoder.calibrated

  def posterior(self, x):
    """q(z|x) (batch [B], event [latent_dim]) for x float32 [B, H, W, C]; a point mass at the
    code for deterministic autoencoders. Models whose posterior needs more than x (M2) return
    None, and the latent figures and diagnostics are skipped for them."""
    return self.encoder(x)

  def reconstruct(self, x):
    """The decoder mean at the posterior mean: float32 [B, H, W, C] for x [B, H, W, C]."""
    return self.reconstruct_from(x, self.encoder(x))

  def reconstruct_from(self, x, q_z):
    del x
    return self.decode(q_z.mean()).mean()

  def sample(self, n, seed, label=None):
    """n draws from the generative model (models with a prior only).

    Args:
      n: int32 scalar.
      seed: int32 Tensor [2], stateless: the same seed gives the same images. It is split in
        two, one for z ~ p(z) and one for x ~ p(x|z), so the two draws are independent.
      label: unused (these models are not label-conditional).

    Returns:
      {"mean": float32 [n, H, W, C] (the decoder mean at z), "sample": float32 [n, H, W, C]
      (pixels drawn from p(x|z))}. The exported `sample` signature returns the same.
    """
    del label
    z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    p_x = self.decode(self.prior().sample(n, seed=z_seed))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}

  def _parts(self):
    """The Keras networks whose variables the model trains, in a fixed order."""
    prior = self.prior_layer  # a Keras layer in subclasses with a learned prior, else None
    return [self.encoder, self.decoder] + ([prior] if prior is not None else [])

  @property
  def trainable_variables(self):
    """Encoder, decoder (then prior) variables, in a fixed order (optimizer slots are stored
    by position)."""
    return [v for part in self._parts() for v in part.trainable_variables]

  @property
  def variables(self):
    return [v for part in self._parts() for v in part.variables]
