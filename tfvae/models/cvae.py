"""The conditional VAE (CVAE) of Sohn, Lee & Yan (2015): encoder, decoder and prior take a
condition c.

Generative model: p(z|c), either a prior network (c -> a diagonal Gaussian) or N(0, I) whatever
c (--conditional_prior), and p(x|z, c), the decoder's likelihood at [z, c] (one input of width
latent_dim + C). Inference: q(z|x, c), the encoder's image features joined with c
(networks.ConditionalEncoder).

  ELBO(x|c) = E_q(z|x,c) log p(x|z, c) - KL(q(z|x, c) || p(z|c))      (Sohn et al. 2015, eq. 4:
                                                                      their x is our c, their y our x)
  loss per example = distortion + beta * rate, rate the analytic KL (tfd.kl_divergence of two
  diagonal Gaussians), beta from --beta and its schedule as for the VAE.

The condition is a vector c float32 [B, C] (`condition_dim(config)`), read from each batch by
the model's class (the registry's CVAE picks it by the data, `family_class`):
  CVAE           c = one-hot of batch["label"] (C = K = config.data.num_classes; a label < 0,
                 unknown, gives c = 0): LabelConditional, so sample(n, seed, label), the
                 SavedModel's label arguments and the figures' per-class rows work as for m2;
  CovariateCVAE  c = batch["condition"], real covariates (C = config.data.condition_dim > 0:
                 --condition_columns, tfvae.data.from_arrays(conditions=)); sample(n, seed,
                 condition) (docs/conditional.md).

User networks (tfvae/user_networks.py, `CVAEConfig.accepts`): the encoder x -> features [B, F]
(tfvae joins them with c and adds q(z|x, c)'s head), the decoder over [z, c]
[B, latent_dim + C], its likelihood, and the prior p(z|c) in place of the prior network: c
[B, C] -> a tfd.Distribution (batch [B], event [latent_dim]) or (loc, raw scale)
[B, 2 * latent_dim] (priors.UserConditionalPrior).

Reference:
  Sohn, Lee & Yan, "Learning Structured Output Representation using Deep Conditional
  Generative Models", NeurIPS 2015.
"""

import dataclasses

import tensorflow as tf

from tfvae import config_fields
from tfvae import decoders
from tfvae import networks
from tfvae import objectives
from tfvae import priors
from tfvae import user_networks
from tfvae.config_fields import MODEL, field
from tfvae.errors import ConfigError
from tfvae.models import base
from tfvae.models import conditioned
from tfvae.models import interface

tfd = networks.tfd


def condition_dim(config) -> int:
  """C, the width of the condition vector c of a CVAE on `config`'s data: the data's real
  conditions (config.data.condition_dim) when they have some, else the K classes (c is the
  one-hot of the label)."""
  return config.data.condition_dim if config.data.condition_dim > 0 else config.data.num_classes


@dataclasses.dataclass(frozen=True)
class CVAEConfig(base.RateScheduleConfig, base.ModelConfig):
  """The CVAE's knobs: its prior p(z|c), the Monte Carlo samples, and the rate's weight and
  schedule (base.RateScheduleConfig, as the VAE's).

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "cvae"
  conditional_prior: str = field(
      "learned", MODEL,
      "cvae: p(z|c), learned (a prior network c -> diagonal Gaussian, Sohn et al. 2015) or "
      "standard (N(0, I) whatever the condition c).",
      choices=("learned", "standard"))
  prior_hidden_sizes: tuple[int, ...] = field(
      (64,), MODEL,
      "cvae with --conditional_prior=learned: comma-separated hidden widths (ReLU Dense) of "
      "the prior network c -> (loc, scale) of p(z|c); its output layer starts at N(0, I). "
      "Not read where a prior network is given (tfvae.fit(..., prior=)).")
  num_samples: int = field(
      1, MODEL,
      "Monte Carlo samples L of z per example of the distortion term.")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 1, "num_samples")
    if any(s < 1 for s in self.prior_hidden_sizes):
      raise ConfigError(f"--prior_hidden_sizes={','.join(map(str, self.prior_hidden_sizes))} "
                        "must be positive integers (or empty: one linear layer).")

  def check_with(self, config):
    """Refuses data without labels or conditions, once they are resolved (image_shape known)."""
    if (config.data.image_shape and config.data.num_classes < 2
        and config.data.condition_dim < 1):
      raise ConfigError(f"--model={self.family} generates given a class or a condition: "
                        f"--dataset={config.data.dataset} has no labels (num_classes="
                        f"{config.data.num_classes}) and no conditions; give a labeled "
                        "dataset, --label_column or --condition_columns for a table, or "
                        "tfvae.data.from_arrays(..., conditions=).")
    super().check_with(config)

  def accepts(self):
    """encoder (x -> features; tfvae adds q(z|x, c)), decoder over [z, c], likelihood, and
    with --conditional_prior=learned the prior p(z|c), called on c [B, C]."""
    learned = self.conditional_prior == "learned"
    return user_networks.Accepts(
        parts=("encoder", "decoder", "likelihood") + (("prior",) if learned else ()),
        decoder_input=("z", "c"), prior_input="c",
        features_only="--model=cvae joins the features with the condition c for q(z|x, c)",
        not_taken=() if learned else (("prior", "--conditional_prior=standard fixes p(z|c) = "
                                       "N(0, I) whatever c: give --conditional_prior=learned "
                                       "with a prior network"),))

  def condition_dim(self, config):
    """C (the module's `condition_dim`)."""
    return condition_dim(config)

  def network_knobs_read_elsewhere(self):
    """q(z|x, c)'s joint layer reads --hidden_sizes."""
    return frozenset({"hidden_sizes"})

  def inactive(self, config):
    inactive = super().inactive(config)
    if self.conditional_prior != "learned":
      inactive["prior_hidden_sizes"] = f"--conditional_prior={self.conditional_prior}"
    return inactive


class ConditionalVAE(interface.LatentVariableModel, interface.Conditional):
  """What the CVAE is whatever c is: encoder q(z|x, c), decoder p(x|z, c), prior p(z|c), for
  c float32 [B, C] (C = `condition_dim(config)`); see the module docstring. Subclasses say how
  c is read from a batch (`condition`) and how to sample: `CVAE` (c the one-hot of a class)
  and `CovariateCVAE` (c real covariates).

  Args:
    config: tfvae.config.Config whose model section is a CVAEConfig; reads it and
      config.data.image_shape ([H, W, C] images or [D] vectors), num_classes, condition_dim.
    parts: optional tfvae.user_networks.Parts: an encoder body x -> features [B, F] (tfvae
      joins them with c and adds q(z|x, c)'s head), a decoder over [z, c] [B, latent_dim + C]
      with an optional likelihood layer, a prior c [B, C] -> p(z|c) or its (loc, raw scale)
      (with --conditional_prior=learned; priors.UserConditionalPrior).

  Raises:
    ValueError: for an image_shape of another rank, or C < 1.

  `losses_and_posterior` returns q(z|x, c) for the batch's c; `given(c)` is the model with c
  fixed (conditioned.Conditioned), on which evaluation computes the conditional ELBO and IWAE bound.
  """

  config_class = CVAEConfig

  def __init__(self, config, parts=None):
    super().__init__(name="cvae")
    parts = self.parts = parts or user_networks.Parts()
    shape = tuple(config.data.image_shape)
    if len(shape) not in (1, 3):
      raise ValueError(f"config.data.image_shape must be [H, W, C] or [D], got {shape}.")
    self.config = config
    self.num_classes = config.data.num_classes
    self.condition_dim = k = condition_dim(config)
    if k < 1:
      raise ValueError("--model=cvae needs labels or conditions (num_classes="
                       f"{config.data.num_classes}, condition_dim={config.data.condition_dim}).")
    d = config.model.latent_dim
    width = config.model.accepts().decoder_width(d, self.num_classes, k)  # [z, c]: d + C
    sizes = dict(architecture=config.model.architecture, hidden_sizes=config.model.hidden_sizes,
                 conv_filters=config.model.conv_filters)
    self.encoder = networks.ConditionalEncoder(shape, d, k, **sizes, body=parts.encoder,
                                               name="encoder")
    self.decoder = decoders.Decoder(shape, width, **sizes, likelihood=config.model.likelihood,
                                    net=parts.decoder, likelihood_layer=parts.likelihood,
                                    name="decoder")
    self.prior_network = None
    if parts.prior is not None:
      if config.model.conditional_prior != "learned":  # network_checks.check says it first
        raise ValueError("A prior network needs --conditional_prior=learned.")
      self.prior_network = priors.UserConditionalPrior(parts.prior, k, name="prior")
    elif config.model.conditional_prior == "learned":
      self.prior_network = priors.ConditionalPriorNetwork(k, d, config.model.prior_hidden_sizes,
                                                          name="prior")
      self.prior_network(tf.zeros([1, k]))
    self.encoder(tf.zeros([1, *shape]), tf.zeros([1, k]))
    self.decoder(tf.zeros([1, width]))
    q_z = networks.diagonal_gaussian(tf.zeros([1, 2 * d]))  # q(z|x, c) is tfvae's
    self.has_analytic_rate = objectives.has_analytic_rate(q_z, self.conditional_prior(tf.zeros([1, k])))

  @classmethod
  def family_class(cls, config):
    """CovariateCVAE for data with real conditions (config.data.condition_dim > 0), else CVAE
    (c the one-hot of the class)."""
    return CovariateCVAE if config.data.condition_dim > 0 else CVAE

  def _parts(self):
    return [self.encoder, self.decoder] + (
        [self.prior_network] if self.prior_network is not None else [])

  @property
  def trainable_variables(self):
    """Encoder, decoder (then prior network) variables, in a fixed order."""
    return [v for part in self._parts() for v in part.trainable_variables]

  @property
  def variables(self):
    return [v for part in self._parts() for v in part.variables]

  @property
  def calibrated(self):
    return self.decoder.calibrated

  def given(self, c):
    """The model with c float32 [B, C] fixed (conditioned.Conditioned)."""
    return conditioned.Conditioned(self, c)

  def conditional_prior(self, c, training=False):
    """p(z|c): MultivariateNormalDiag, batch [B], event [latent_dim], for c float32 [B, C]."""
    c = tf.convert_to_tensor(c, tf.float32)
    if self.prior_network is None:
      d = self.config.model.latent_dim
      return tfd.MultivariateNormalDiag(loc=tf.zeros([tf.shape(c)[0], d]),
                                        scale_diag=tf.ones([tf.shape(c)[0], d]))
    return self.prior_network(c, training=training)

  def posterior(self, x):
    raise ValueError("--model=cvae: q(z|x, c) needs the condition c: use encode(x, c) or "
                     "given(c).posterior(x).")

  def encode(self, x, c):
    """q(z|x, c): x [B, *image_shape], c [B, C] -> batch [B], event [latent_dim]."""
    return self.encoder(x, c)

  def decode(self, z, c, training=False):
    """p(x|z, c): z [..., B, D], c [B, C] (or [..., B, C]) -> batch [..., B], event
    image_shape; the decoder's input is [z, c]."""
    c = tf.cast(c, z.dtype)
    c = tf.broadcast_to(c, tf.concat([tf.shape(z)[:-1], tf.shape(c)[-1:]], 0))
    return self.decoder(tf.concat([z, c], -1), training=training)

  def reconstruct(self, x, c):
    """Decoder mean at z = E q(z|x, c), given c: float32 [B, *image_shape]."""
    return self.given(c).reconstruct(x)

  def beta(self, step):
    """The scheduled rate weight at `step`, float32 scalar Tensor (base.RateScheduleConfig)."""
    return self.config.model.scheduled_beta(step)

  def elbo(self, x, seed, c):
    """{"elbo", "rate", "distortion"} [B], nats: the ELBO of x given c [B, C]."""
    return self.given(c).elbo(x, seed)

  def losses_and_posterior(self, batch, seed, step, training=True):
    """Per-example terms (dict of float32 [B], nats: loss = distortion + beta * rate; elbo,
    rate = KL(q(z|x,c) || p(z|c)) analytic, distortion = -E log p(x|z,c)) and q(z|x, c), for
    batch {"image", "label"[, "condition"][, "index"]} (`Conditioned.losses_and_posterior`)."""
    return self.given(self.condition(batch)).losses_and_posterior(batch, seed, step, training)

  def sample_given(self, c, seed):
    """One draw per row of c float32 [n, C]: z ~ p(z|c), x ~ p(x|z, c); {"mean", "sample"}
    float32 [n, *image_shape]. seed: int32 [2], split for z and x."""
    z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z = self.conditional_prior(c).sample(seed=z_seed)
    p_x = self.decode(z, c)
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}


class CVAE(ConditionalVAE, interface.LabelConditional):
  """The CVAE given a class: c is the one-hot of batch["label"] (C = K = num_classes >= 2), so
  sample(n, seed, label), the SavedModel's label arguments and the figures' per-class rows work
  as for m2. The --model=cvae registry entry: `family_class` builds a CovariateCVAE instead for
  data with real conditions.

  Raises:
    ValueError: as ConditionalVAE, or data without labels (K < 2).
  """

  def __init__(self, config, parts=None):
    if config.data.num_classes < 2:
      raise ValueError(f"--model=cvae needs labels (num_classes={config.data.num_classes}).")
    super().__init__(config, parts)

  def condition(self, batch):
    """c = one-hot of batch["label"] (int [B]), float32 [B, K]; 0 where the label is < 0."""
    return tf.one_hot(tf.cast(batch["label"], tf.int32), self.num_classes)

  def prior(self):
    """p(z) = (1/K) sum_k p(z|k), the prior over the K classes drawn uniformly (N(0, I) for
    --conditional_prior=standard): event [latent_dim]."""
    if self.prior_network is None:
      return networks.prior(self.config.model.latent_dim)
    return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros([self.num_classes])),
                                 self.prior_network(tf.eye(self.num_classes)))

  def sample(self, n, seed, label=None):
    """{"mean", "sample"} [n, *image_shape] and "label" int64 [n]: label None or < 0 draws
    each image's class uniformly, else every image is of class `label` (int scalar)."""
    model_seed, y_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    y = tf.random.stateless_uniform([n], y_seed, 0, self.num_classes, tf.int64)
    if label is not None:
      y = tf.where(tf.cast(label, tf.int64) < 0, y, tf.cast(label, tf.int64))
    return {**self.sample_given(tf.one_hot(y, self.num_classes), model_seed), "label": y}

  def style_transfer(self, x, y_onehot):
    """z = E q(z|x, c) of each image (its class c) decoded with every class:
    float32 [B, K, *image_shape]."""
    z = self.encoder(x, y_onehot).mean()  # [B, D]
    k, b = self.num_classes, tf.shape(z)[0]
    z_all = tf.broadcast_to(z[:, None], [b, k, z.shape[-1]])
    return self.decode(z_all, tf.broadcast_to(tf.eye(k)[None], [b, k, k])).mean()


class CovariateCVAE(ConditionalVAE):
  """The CVAE given real covariates: c = batch["condition"] float32 [B, C] (C =
  config.data.condition_dim >= 1: --condition_columns, tfvae.data.from_arrays(conditions=)).
  It has no classes (not LabelConditional): it samples given a condition, sample(n, seed,
  condition). Its unconditional prior p(z) = E_c p(z|c) needs the distribution of c, which the
  model does not hold: prior() is N(0, I) under --conditional_prior=standard (exact: p(z|c) is
  N(0, I) for every c) and refused under learned (use given(c).prior(), or sample given c).
  """

  def condition(self, batch):
    """c = batch["condition"], float32 [B, C]."""
    return tf.cast(batch["condition"], tf.float32)

  def prior(self):
    """p(z): N(0, I) (event [latent_dim]) under --conditional_prior=standard.

    Raises:
      ValueError: under --conditional_prior=learned, where p(z) = E_c p(z|c) needs the
        distribution of the conditions.
    """
    if self.prior_network is None:
      return networks.prior(self.config.model.latent_dim)
    raise ValueError("--model=cvae on conditions with --conditional_prior=learned: p(z) = "
                     "E_c p(z|c) needs the distribution of c; use p(z|c) (given(c).prior()) "
                     "or sample(n, seed, condition).")

  def sample(self, n, seed, condition=None):
    """{"mean", "sample"} float32 [n, *image_shape]: z ~ p(z|c), x ~ p(x|z, c), for condition
    float32 [n, C] (one row per draw) or [C] / [1, C] (every draw given it).

    Raises:
      ValueError: without a condition (the model samples only given one).
    """
    if condition is None:
      raise ValueError("--model=cvae on conditions samples given them: pass condition, "
                       f"float32 [n, {self.condition_dim}] or [{self.condition_dim}].")
    c = tf.reshape(tf.cast(condition, tf.float32), [-1, self.condition_dim])
    c = tf.broadcast_to(c, [n, self.condition_dim])
    return self.sample_given(c, seed)
