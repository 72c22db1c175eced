"""The gmm sampler: a Gaussian mixture fitted to the training codes, sampled in TensorFlow.

Ex-post density estimation (Ghosh, Sajjadi, Vergari, Black & Schölkopf, "From variational to
deterministic autoencoders", ICLR 2020, section 4): after training, fit a density to the codes
E[q(z|x)] of the train split and draw z from it instead of the prior; with a 10-component
full-covariance GMM the paper finds better samples for VAEs and (regularized) autoencoders alike.

scikit-learn's GaussianMixture fits it; what sampling needs is stored as arrays (WORKDIR/
sampler/gmm.npz: weights [K], means [K, D], scale_tril [K, D, D], the Cholesky factors of the
component covariances, whatever --covariance_type was fitted) and sampling is plain TensorFlow
(a stateless categorical draw of the component, then mean + scale_tril @ eps), so the exported
SavedModel needs neither scikit-learn nor TensorFlow Probability.
"""

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfvae import atomic
from tfvae.errors import ConfigError
from tfvae.samplers import base

FILENAME = "gmm.npz"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclasses.dataclass(frozen=True)
class GMMOptions:
  """The options of --sampler=gmm (scikit-learn GaussianMixture's, under the flag names).

  Attributes:
    num_components: K >= 1 mixture components (at most the number of train codes).
    covariance_type: full, tied, diag or spherical (sklearn's covariance_type).
    reg_covar: a finite number >= 0, added to the covariance diagonals (sklearn's reg_covar).
    max_iter: >= 1 EM iterations at most.
    seed: the initialization's random_state, an int in 0..2**31 - 1.

  Raises:
    ConfigError: one line naming the flag, for a value of another type (a bool where a number
      is wanted included) or out of range.
  """
  num_components: int = 10
  covariance_type: str = "full"
  reg_covar: float = 1e-6
  max_iter: int = 100
  seed: int = 0

  def __post_init__(self) -> None:
    base.check_int("num_components", self.num_components, 1)
    if not isinstance(self.covariance_type, str) or self.covariance_type not in COVARIANCE_TYPES:
      raise ConfigError(f"--covariance_type={self.covariance_type!r} is not one of "
                        f"{', '.join(COVARIANCE_TYPES)}.")
    base.check_number("reg_covar", self.reg_covar, 0)
    base.check_int("max_iter", self.max_iter, 1)
    base.check_int("seed", self.seed, 0, base.MAX_SEED)
    base.as_python(self)


def full_covariances(gmm: Any) -> np.ndarray:
  """float64 [K, D, D]: the component covariances of a fitted sklearn GaussianMixture, whatever
  its covariance_type (tied: one shared [D, D]; diag: [K, D]; spherical: [K])."""
  cov, k, d = gmm.covariances_, gmm.n_components, gmm.means_.shape[1]
  if gmm.covariance_type == "full":
    return np.asarray(cov, np.float64)
  if gmm.covariance_type == "tied":
    return np.broadcast_to(cov, (k, d, d)).astype(np.float64)
  if gmm.covariance_type == "diag":
    return np.stack([np.diag(v) for v in cov]).astype(np.float64)
  return np.asarray(cov, np.float64)[:, None, None] * np.eye(d)


class GMM(base.Sampler):
  """z ~ sum_k w_k N(mean_k, L_k L_k^T), from arrays (a fitted sklearn mixture's, see `fit`).

  Args:
    weights: float [K], summing to 1. means: float [K, D]. scale_tril: float [K, D, D], lower
      triangular with a positive diagonal (Cholesky factors of the covariances).
    info: the record of the fit (base.Sampler.info).
  """
  kind = "gmm"

  def __init__(self, weights: np.ndarray, means: np.ndarray, scale_tril: np.ndarray,
               info: dict[str, Any]):
    super().__init__(info)
    self.weights = np.asarray(weights, np.float64)
    self.means = np.asarray(means, np.float64)
    self.scale_tril = np.asarray(scale_tril, np.float64)
    self.description = (f"a {len(self.weights)}-component "
                        f"{info['options']['covariance_type']} GMM of the codes")
    self._log_weights = tf.Variable(np.log(self.weights)[None].astype(np.float32),
                                    trainable=False, name="gmm_log_weights")  # [1, K]
    self._means = tf.Variable(self.means.astype(np.float32), trainable=False, name="gmm_means")
    self._scale_tril = tf.Variable(self.scale_tril.astype(np.float32), trainable=False,
                                   name="gmm_scale_tril")

  @property
  def variables(self) -> list[tf.Variable]:
    return [self._log_weights, self._means, self._scale_tril]

  def sample_codes(self, n: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """float32 [n, D]: k ~ Categorical(weights), z = means[k] + scale_tril[k] @ eps, eps ~
    N(0, I); each from its half of the stateless seed int32 [2]."""
    k_seed, eps_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    k = tf.random.stateless_categorical(self._log_weights, n, seed=k_seed)[0]  # int64 [n]
    eps = tf.random.stateless_normal(tf.stack([n, tf.shape(self._means)[1]]), seed=eps_seed)
    return (tf.gather(self._means, k)
            + tf.linalg.matvec(tf.gather(self._scale_tril, k), eps))

  @classmethod
  def fit(cls, codes: dict[str, np.ndarray], options: GMMOptions,
          info: dict[str, Any]) -> "GMM":
    """Fits sklearn's GaussianMixture to codes["train"] [N, D] (random_state = options.seed);
    records its convergence and the mean log-likelihood of each split's codes in info["fit"].

    Raises:
      ConfigError: --num_components above the number of train codes (before fitting).
    """
    from sklearn import mixture  # pylint: disable=import-outside-toplevel
    train = codes["train"]
    if options.num_components > len(train):
      raise ConfigError(f"--num_components={options.num_components} is more than the "
                        f"{len(train)} train codes to fit.")
    gmm = mixture.GaussianMixture(options.num_components,
                                  covariance_type=options.covariance_type,
                                  reg_covar=options.reg_covar, max_iter=options.max_iter,
                                  random_state=options.seed).fit(train)
    info = {**info, "fit": {
        "converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_),
        **{f"{split}_log_likelihood": float(np.mean(gmm.score_samples(x)))
           for split, x in codes.items() if len(x)}}}
    return cls(gmm.weights_, gmm.means_, np.linalg.cholesky(full_covariances(gmm)), info)

  def save(self, folder: str) -> None:
    """Writes FOLDER/gmm.npz (weights, means, scale_tril; float64) atomically."""
    with atomic.replacing(os.path.join(folder, FILENAME), "wb") as f:
      np.savez(f, weights=self.weights, means=self.means, scale_tril=self.scale_tril)

  @classmethod
  def load(cls, folder: str, info: dict[str, Any]) -> "GMM":
    """The GMM of FOLDER/gmm.npz with its record `info` (sampler.json's)."""
    with np.load(os.path.join(folder, FILENAME)) as arrays:
      return cls(arrays["weights"], arrays["means"], arrays["scale_tril"], info)
