"""Deterministic autoencoders, the VAE's baselines: plain, sparse, denoising and contractive.

Each is the plain `AE` with one hook overridden: `_corrupt` (the input the encoder sees) or
`_penalty` (the regularizer added to the reconstruction loss). The reconstruction loss is the
decoder's likelihood head at the code, distortion = -log p(x | g(h)), h = f(x), in nats:
binary cross-entropy for bernoulli; for normal with its learned shared scale sigma,
(x - g(h))^2 / (2 sigma^2) + log(sigma sqrt(2 pi)) per pixel -- the squared error up to a scale and
a constant (the learned sigma^2 tends to the mean squared error).

There is no density over codes (an AE is not an interface.LatentVariableModel): no ELBO, and
no samples until a density is fitted to the codes afterwards (tfvae/samplers: gmm, two_stage).

References:
  Vincent, Larochelle, Bengio & Manzagol, "Extracting and composing robust features with
  denoising autoencoders", ICML 2008.
  Rifai, Vincent, Muller, Glorot & Bengio, "Contractive auto-encoders", ICML 2011.
  Goodfellow, Bengio & Courville, "Deep Learning", 2016, chapter 14 (sparse autoencoders).
"""

import dataclasses

import tensorflow as tf

from tfvae import config_fields
from tfvae import objectives
from tfvae import user_networks
from tfvae.config_fields import MODEL, field
from tfvae.errors import ConfigError
from tfvae.models import base


@dataclasses.dataclass(frozen=True)
class AEConfig(base.ModelConfig):
  """The plain autoencoder: the networks' knobs only."""
  family = "ae"

  def accepts(self):
    """encoder (features; tfvae adds the code's head), decoder and likelihood (no prior)."""
    return user_networks.Accepts(parts=("encoder", "decoder", "likelihood"))


@dataclasses.dataclass(frozen=True)
class SparseAEConfig(AEConfig):
  """The sparse autoencoder: the weight of the L1 penalty on the code.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "sparse_ae"
  sparsity_weight: float = field(
      0.01, MODEL,
      "sparse_ae: weight lambda of the L1 penalty lambda*||h||_1 on the code.")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 0, "sparsity_weight")


@dataclasses.dataclass(frozen=True)
class DenoisingAEConfig(AEConfig):
  """The denoising autoencoder: the corruption of its input and its level.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "denoising_ae"
  corruption: str = field(
      "masking", MODEL,
      "denoising_ae: masking (each input pixel set to 0 with probability --corruption_level) "
      "or gaussian (add N(0, corruption_level^2) noise).",
      choices=('masking', 'gaussian'))
  corruption_level: float = field(
      0.25, MODEL,
      "denoising_ae: masking probability nu in [0, 1), or noise std sigma.")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 0, "corruption_level")
    if self.corruption == "masking" and self.corruption_level >= 1:
      raise ConfigError(f"--corruption_level={self.corruption_level} must be in [0, 1) for "
                        "--corruption=masking (it is the probability of masking a pixel).")


@dataclasses.dataclass(frozen=True)
class ContractiveAEConfig(AEConfig):
  """The contractive autoencoder: the weight of the Jacobian penalty.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "contractive_ae"
  contraction_weight: float = field(
      0.1, MODEL,
      "contractive_ae: weight lambda of lambda*||dh/dx||_F^2, the squared Frobenius norm of "
      "the encoder's Jacobian (Rifai et al. 2011).")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 0, "contraction_weight")


class AE(base.EncoderDecoder):
  """x -> code h = f(x) [B, latent_dim] -> p(x | g(h)); loss = distortion + penalty.

  Args:
    config: tfvae.config.Config; uses image_shape, latent_dim, architecture, hidden_sizes,
      conv_filters and likelihood (and the family's own weight flags).

  `encoder(x)` returns VectorDeterministic(h) (batch [B], event [D]): `.mean()` is the code.
  """

  config_class = AEConfig

  def __init__(self, config, parts=None):
    super().__init__(config, stochastic=False, name=config.family, parts=parts)

  def _corrupt(self, x, seed):
    """The encoder's input during training (the identity here)."""
    del seed
    return x

  def _penalty(self, x_in, encode):
    """(code [B, D], regularizer [B] in nats-equivalent units, its name or None)."""
    return encode(x_in), tf.zeros([tf.shape(x_in)[0]]), None

  def losses_and_posterior(self, batch, seed, step, training=True):
    """Per-example loss terms of one batch, and the code distribution they used.

    Args:
      batch: dict with "image": float32 [B, H, W, C] in [0, 1].
      seed: int32 Tensor [2], stateless seed (corruption noise).
      step: int64 scalar Tensor, the global step (unused).
      training: bool; False evaluates on the clean input (no corruption).

    Returns:
      (terms, q): terms is a dict of float32 Tensors [B]: loss (minimized) and distortion =
      -log p(x | g(f(x))) in nats, plus the family's penalty term (sparsity_penalty,
      contractive_penalty) when it has one; q is the encoder's point mass at the code of the
      encoder's input (batch [B], event [latent_dim]).
    """
    del step
    x = batch["image"]
    x_in = self._corrupt(x, seed) if training else x
    posterior = []

    def encode(inputs):
      posterior.append(self.encoder(inputs, training=training))
      return posterior[-1].mean()

    code, penalty, name = self._penalty(x_in, encode)
    fitted = base.log_likelihood(self.decoder, self.decoder(code, training=training), x,
                                 training)
    distortion = -fitted["log_likelihood"]
    terms = {"loss": distortion + penalty, "distortion": distortion}
    if "mean_squared_error" in fitted:
      terms["mean_squared_error"] = fitted["mean_squared_error"]
    if name:
      terms[name] = penalty
    return terms, posterior[-1]


class SparseAE(AE):
  """AE + lambda * ||h||_1 on the code (--sparsity_weight)."""

  config_class = SparseAEConfig

  def _penalty(self, x_in, encode):
    code = encode(x_in)
    penalty = objectives.sparsity_penalty(code, self.config.model.sparsity_weight)
    return code, penalty, "sparsity_penalty"


class DenoisingAE(AE):
  """Encodes a corrupted input (--corruption, --corruption_level) and is scored on the clean one."""

  config_class = DenoisingAEConfig

  def _corrupt(self, x, seed):
    return objectives.corrupt(x, self.config.model.corruption, self.config.model.corruption_level,
                              seed)


class ContractiveAE(AE):
  """AE + lambda * ||dh/dx||_F^2, the encoder Jacobian's exact squared Frobenius norm
  (--contraction_weight)."""

  config_class = ContractiveAEConfig

  def _penalty(self, x_in, encode):
    code, penalty = objectives.contractive_penalty(encode, x_in,
                                                   self.config.model.contraction_weight)
    return code, penalty, "contractive_penalty"
