"""What encoder/decoder models share (the interface and its capability types are in
tfvae/models/interface.py): their config (`ModelConfig`: the networks' knobs every family's config extends;
`SemiSupervisedConfig` for families trained on labeled and unlabeled batches) and the networks
(`EncoderDecoder`: both built from the config, their variables in a fixed order)."""

import dataclasses
from typing import ClassVar

import tensorflow as tf

from tfvae import config_fields
from tfvae import decoders
from tfvae import network_factories
from tfvae import networks
from tfvae import objectives
from tfvae import user_networks
from tfvae.config_fields import DATA, MODEL, field
from tfvae.errors import ConfigError
from tfvae.models.interface import Model


def log_likelihood(decoder, p_x, x, training):
  """{"log_likelihood": log p(x|z) float32 [..., B]} of a decoders.Decoder's output p_x. Where
  the decoder is calibrated (the sigma-VAE) also "mean_squared_error" [B, *S]
  (decoders.Decoder.squared_error), and in training p(x|z) has the batch's fitted scale
  (decoders.Decoder.fit_scale; the trainer sums the error and calls `Model.update_statistics`);
  in evaluation the stored one (`Model.calibrate` fits it on held-out data)."""
  if training:
    p_x, squared_error = decoder.fit_scale(p_x, x)
  else:
    squared_error = decoder.squared_error(p_x, x)
  out = {"log_likelihood": p_x.log_prob(x)}
  if squared_error is not None:
    out["mean_squared_error"] = squared_error
  return out


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
      "Decoder distribution p(x|z): bernoulli (binary pixels); normal with one shared scale, "
      "calibrated (the sigma-VAE of Rybkin et al. 2021: the batch's RMSE in training; in "
      "evaluation and the export the RMSE on the validation split, refit at every "
      "validation; docs/data.md); normal_per_pixel (loc and scale per pixel); laplace with "
      "one learned scale (the L1 loss); continuous_bernoulli (a density on [0,1], "
      "Loaiza-Ganem & Cunningham 2019); for vectors also poisson and "
      "negative_binomial (counts; a learned dispersion per feature); normal and laplace then "
      "have one scale per feature. Deterministic AEs use it as their reconstruction loss.",
      choices=('bernoulli', 'normal', 'normal_per_pixel', 'laplace', 'continuous_bernoulli',
               'poisson', 'negative_binomial'))
  encoder: str = field(
      "", MODEL,
      "Your own encoder network: module.path:function, a factory f(data_shape, latent_dim) -> "
      "keras.Model (data_shape the tuple (H, W, C) or (D,); its output: features [B, F] or "
      "q(z|x), docs/own_networks.md). Empty: tfvae builds its own. The module is imported "
      "(from the Python path) when the run is trained, resumed and loaded.")
  decoder: str = field(
      "", MODEL,
      "Your own decoder network: module.path:function, a factory f(data_shape, latent_dim) -> "
      "keras.Model (z [B, latent_dim] -> the likelihood's parameters or p(x|z); hvae's reads "
      "[z1, z2], m2's [z, y_onehot], cvae's [z, c], concatenated: docs/own_networks.md). "
      "Empty: tfvae builds its own. The module is imported (from the Python path) when the "
      "run is trained, resumed and loaded.")

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
    for name in network_factories.FACTORY_PARTS:
      network_factories.check_factory_name(name, getattr(self, name), self)

  def accepts(self):
    """The user networks this family takes and what they are called on
    (tfvae.user_networks.Accepts); the default: none, the family builds its own."""
    return user_networks.Accepts()

  def condition_dim(self, config) -> int:
    """C, the width of the condition c [B, C] this family's networks are given besides x and z
    (the decoder input "c" of `accepts()`), for the run's Config `config`; 0 (the default): the
    family has no condition."""
    del config
    return 0

  def network_knobs_read_elsewhere(self):
    """The network knobs (architecture, hidden_sizes, conv_filters) that this family reads
    outside its encoder and decoder (a classifier, a second latent level); those it does not
    read have no effect when --encoder and --decoder both name factories (`inactive`)."""
    return frozenset()

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
    inactive = {} if self.architecture == "conv" else {
        "conv_filters": f"--architecture={self.architecture}"}
    if self.encoder and self.decoder:  # neither network is built from the knobs
      why = f"--encoder={self.encoder} and --decoder={self.decoder}"
      for name in ("architecture", "hidden_sizes", "conv_filters"):
        if name not in self.network_knobs_read_elsewhere():
          inactive[name] = why
    return inactive


@dataclasses.dataclass(frozen=True)
class RateScheduleConfig:
  """The rate's weight beta and its schedule: a mixin of the configs of families whose loss is
  distortion + beta(step) * rate (vae and the configs extending it, cvae). Put it before
  ModelConfig among the bases; the model's `beta(step)` is `scheduled_beta(step)`.

  References: Higgins et al. 2017 (beta-VAE), Bowman et al. 2016 (linear KL annealing), Fu et
  al. 2019 (cyclical schedule, R = 0.5).
  """
  beta: float = field(
      1.0, MODEL,
      "Weight of the rate (KL) term in the loss; beta=1 is the ELBO. With a schedule, the "
      "value reached at the end of the warm-up.")
  beta_schedule: str = field(
      "constant", MODEL,
      "constant: beta throughout; linear: 0 -> beta over --warmup_steps, then beta (KL "
      "annealing, Bowman et al. 2016); cyclical: --num_cycles cycles of 2*warmup_steps steps,"
      " each ramping 0 -> beta over its first half and holding beta over its second (Fu et "
      "al. 2019, R = 0.5), then beta.",
      choices=("constant", "linear", "cyclical"))
  warmup_steps: int = field(
      0, MODEL,
      "Steps of the beta ramp (linear and cyclical schedules).")
  num_cycles: int = field(
      4, MODEL,
      "Number of cycles of the cyclical beta schedule.")

  def check(self):
    """Raises ConfigError for a negative beta or warmup_steps, num_cycles < 1, or a schedule
    without warm-up steps."""
    super().check()  # type: ignore[misc]
    config_fields.check_at_least(self, 1, "num_cycles")
    config_fields.check_at_least(self, 0, "beta", "warmup_steps")
    if self.beta_schedule != "constant" and self.warmup_steps < 1:
      raise ConfigError(f"--beta_schedule={self.beta_schedule} needs --warmup_steps >= 1.")

  def warmup_end(self):
    """warmup_steps (linear), the end of the last cycle (cyclical), 0 (constant)."""
    if self.beta_schedule == "linear":
      return self.warmup_steps
    if self.beta_schedule == "cyclical":
      return 2 * self.warmup_steps * self.num_cycles
    return 0

  def scheduled_beta(self, step):
    """beta at `step` (int scalar or Tensor): float32 scalar Tensor (objectives.scheduled_beta)."""
    return objectives.scheduled_beta(step, self.beta, self.beta_schedule, self.warmup_steps,
                                     self.num_cycles)

  def inactive(self, config):
    inactive = super().inactive(config)  # type: ignore[misc]
    if self.beta_schedule == "constant":
      inactive["warmup_steps"] = "--beta_schedule=constant"
    if self.beta_schedule != "cyclical":
      inactive["num_cycles"] = f"--beta_schedule={self.beta_schedule}"
    return inactive


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
  The decoder reads what the family's `accepts().decoder_input` names, joined on the last
  axis (z, or hvae's [z1, z2]), unless `decoder_inputs` gives another width.
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
    decoder_inputs = decoder_inputs or config.model.accepts().decoder_width(
        config.model.latent_dim, config.data.num_classes, config.model.condition_dim(config))
    self.decoder = decoders.Decoder(config.data.image_shape, decoder_inputs, **sizes,
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
