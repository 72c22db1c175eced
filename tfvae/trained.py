"""TrainedModel: a trained model of tfvae, numpy in, numpy or tfp distributions out.

`tfvae.fit` returns one (with its final metrics in `.results`) and `tfvae.load` rebuilds one
from a run folder (tfvae/api.py). Inputs are numpy arrays: images [N, H, W, C] as integer
pixels 0..max_value (as stored; divided by the run's max value, 255 or 16 for digits), bool,
or floats already in [0, 1]; raw float vectors [N, D] (standardized inside with the run's
statistics under --standardize, outputs in raw units, as the SavedModel does). Values the
SavedModel refuses are refused here too, with a DataError naming the argument and the range
found (tfvae.data.arrays.checked_pixels): integer pixels above max_value, floats outside
[0, 1] (e.g. raw 0..255 floats), NaN, inf, None. The checks of every argument (x, label,
condition, counts, seeds) live in tfvae/model_inputs.py; the traced terms and bounds elbo and
iwae_bound evaluate in batches in tfvae/trained_bounds.py. TrainedModel's evaluations of a
split (evaluate, m1_accuracy, sample_quality; and data) are inherited from
tfvae/trained_evaluation.py.
"""

import os
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import model_inputs
from tfvae.model_inputs import as_source, DataLike, PathLike  # noqa: F401 (API names)
from tfvae.model_inputs import check_int as _check_int
from tfvae import samplers
from tfvae import trained_bounds
from tfvae import trained_evaluation
from tfvae.config import Config
from tfvae.data import arrays
from tfvae.serving import MAX_SAMPLES
from tfvae.models import interface


class TrainedModel(trained_evaluation.Evaluations):
  """A trained model with numpy in, numpy or tfp distributions out.

  Attributes:
    config: the run's Config. model: the model object (tfvae.models). step: the train step
    of its weights. workdir: the run folder. strategy: the tf.distribute.Strategy it runs
    under. results: what `tfvae.fit` returned before issue 34: {"step", "validation",
    "test"}, the final metrics of the training that made it (nats per example); None for a
    model from `tfvae.load` (WORKDIR/eval.json holds them). sampler: where `sample` draws
    codes from (tfvae/samplers): the prior (standard) unless a sampler was fitted to the codes
    (`fit_sampler`, or stored in WORKDIR/sampler for these weights).
  """

  def __init__(self, config: Config, model: Any, step: int, workdir: Optional[PathLike] = None,
               strategy: Optional[tf.distribute.Strategy] = None,
               results: Optional[dict[str, Any]] = None,
               sampler: Optional[samplers.Sampler] = None):
    self.config = config
    self.model = model
    self.step = step
    self.workdir = workdir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.results = results
    self.sampler = sampler or samplers.Standard()
    self._terms_fn: Any = None  # traced on first use (elbo), then reused
    self._bound_fns: dict[tuple[int, int], Any] = {}  # (K, chunk_size) -> traced bound

  def __repr__(self) -> str:
    return (f"TrainedModel({self.config.family}, latent_dim={self.config.model.latent_dim}, "
            f"step={self.step}, workdir={self.workdir!r})")

  def _inputs(self, x: Any, name: str = "x") -> tf.Tensor:
    """float32 Tensor [N, *image_shape] of x, checked (model_inputs.examples)."""
    return model_inputs.examples(self.config, x, name)

  def _given(self, num: int, label: Optional[Any],
             condition: Optional[Any]) -> dict[str, tf.Tensor]:
    """{"label" int64 [num](, "condition" float32 [num, C])}, checked (model_inputs.given)."""
    return model_inputs.given(self.model, self.config.family, num, label, condition)

  def _raw(self, x: Any) -> np.ndarray:
    """Model outputs in raw feature units (--standardize), as the export returns them."""
    x = np.asarray(x)
    if self.config.data.feature_mean:
      x = x * np.asarray(self.config.data.feature_scale, np.float32) + np.asarray(
          self.config.data.feature_mean, np.float32)
    return x

  def encode(self, x: np.ndarray, label: Optional[Any] = None,
             condition: Optional[Any] = None) -> "tfp.distributions.Distribution":
    """q(z|x): a tfd.Distribution with batch [N], event [latent_dim] (its mean() is the code;
    a point mass for deterministic autoencoders); q(z|x, c) for conditional models (cvae).

    Args:
      x: images [N, H, W, C] (or [N, H, W] gray): integer pixels 0..max_value (the run's,
        e.g. 255 or 16; divided by it), bool, or floats in [0, 1]; or vectors [N, D] of finite
        raw features. (See the module docstring.)
      label: the cvae on classes only, and required there, as in `elbo`.
      condition: the cvae on real conditions only, and required there, as in `elbo`.

    Raises:
      ValueError: for m2 (its posterior needs a label: model.model.encode(x, y_onehot)), x of
        another shape, a label or condition as in `elbo`.
      DataError (a ValueError): x's values are not pixels (integers outside 0..max_value, floats
        outside [0, 1], NaN, inf, None), naming x and the range found.
    """
    x = self._inputs(x)
    given = self._given(int(x.shape[0]), label, condition)  # refuses what the model does not take
    model: Any = self.model
    if isinstance(self.model, interface.Conditional):
      return model.encode(x, model.condition(given))
    if isinstance(self.model, interface.LabelConditional):
      raise ValueError(f"--model={self.config.family} encodes x together with a label y: use "
                       "model.model.encode(x, y_onehot).")
    return model.posterior(x)

  def decode(self, z: np.ndarray, label: Optional[Any] = None,
             condition: Optional[Any] = None) -> "tfp.distributions.Distribution":
    """p(x|z): a tfd.Distribution, batch [N], event image_shape, for codes z float [N, D]
    (over standardized features with --standardize); p(x|z, c) for conditional models (cvae),
    whose `label` (or, on real conditions, `condition`; as in `elbo`) is required.

    Raises:
      ValueError: z of another shape, a label or condition as in `elbo`; DataError (a
        ValueError): z not finite, as the SavedModel.
    """
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != self.config.model.latent_dim:
      raise ValueError(f"z has shape {z.shape}; this model decodes [N, {self.config.model.latent_dim}].")
    codes = tf.constant(arrays.checked_vectors(z, "z"), tf.float32)
    given = self._given(len(z), label, condition)
    model: Any = self.model
    if isinstance(self.model, interface.Conditional):
      return model.decode(codes, model.condition(given))
    return model.decode(codes)

  def reconstruct(self, x: np.ndarray, label: Optional[Any] = None,
                  condition: Optional[Any] = None) -> np.ndarray:
    """float32 numpy [N, *image_shape]: the decoder mean at the posterior mean (raw units).

    Args:
      x: as in `encode`.
      label: the cvae on classes only, and required there: the class of each image, int [N]
        (or one int for all) in [0, K); the reconstruction is given it.
      condition: the cvae on real conditions only, and required there, as in `elbo`.

    Raises:
      ValueError / DataError: x as in `encode`; label and condition as in `elbo`.
    """
    x = self._inputs(x)
    given = self._given(int(x.shape[0]), label, condition)
    model: Any = self.model
    if isinstance(self.model, interface.Conditional):
      return self._raw(model.reconstruct(x, model.condition(given)))
    return self._raw(model.reconstruct(x))

  def sample(self, num: int, seed: int = 0, label: Optional[int] = None,
             sampler: Optional[str] = None,
             condition: Optional[Any] = None) -> dict[str, np.ndarray]:
    """{"mean", "sample"}: float32 numpy [num, *image_shape], decoded codes z drawn from the
    model's sampler: the prior p(z), or the sampler fitted to the codes (`fit_sampler`; the one
    stored with the run). Label-conditional models (m2, cvae) also return "label": int64 numpy
    [num], the class of each (cvae: z ~ p(z|y) and x ~ p(x|z, y)). The one entry point for
    samples (figures and metrics use it).

    Args:
      num: int, 0 <= num <= MAX_SAMPLES (65536, as the SavedModel's sample: the outputs are
        held in memory; call again with other seeds for more).
      seed: int32 (in [-2**31, 2**31)); the same seed gives the same images.
      label: label-conditional models only: None draws each image's class y ~ p(y); an int in
        [0, K) (K = model.num_classes) makes every image of that class (the SavedModel's
        sample takes the same, with a negative label for "draw").
      sampler: None (the model's: `self.sampler`), "standard" (the prior, also when another is
        fitted), or the kind fitted ("gmm", "two_stage").
      condition: the cvae on real conditions only, and required there: float [num, C] (one
        row per image) or [C] (every image given it); z ~ p(z|c), x ~ p(x|z, c).

    Raises:
      ValueError: for deterministic autoencoders without a fitted sampler (no prior), num /
        seed not such an int, a label given to a model without classes or outside [0, K), a
        condition missing (cvae on conditions), given to another model, or not finite
        [num, C] / [C], a sampler that is not fitted (raised before any work).
    """
    chosen = samplers.choose(self.sampler, sampler)
    if chosen.kind == "standard" and not isinstance(self.model, interface.LatentVariableModel):
      raise ValueError(f"--model={self.config.family} has no prior p(z) to sample from: fit a "
                       "sampler to its codes first (fit_sampler('gmm'), or python -m "
                       "tfvae.fit_sampler).")
    classes, c = model_inputs.sample_arguments(self.model, self.config.family, num, seed, label,
                                               condition, MAX_SAMPLES)
    n, seed_pair = tf.constant(num, tf.int32), tf.constant([seed, 0], tf.int32)
    if c is not None:
      out = self.model.sample(n, seed_pair, c)
    elif classes:
      out = self.model.sample(n, seed_pair, tf.constant(-1 if label is None else label, tf.int64))
    else:
      out = chosen.draw(self.model, n, seed_pair)
    return {k: np.asarray(v) if k == "label" else self._raw(v) for k, v in out.items()}

  def sampler_kind(self, sampler: Optional[str] = None) -> str:
    """The kind of sampler `sample(sampler=sampler)` draws codes from: "standard", "gmm" or
    "two_stage" (ConfigError as `sample` for a name that is not fitted)."""
    return samplers.choose(self.sampler, sampler).kind

  def fit_sampler(self, kind: str = "gmm", data: Optional[DataLike] = None,
                  **options: Any) -> samplers.Sampler:
    """Fits a sampler of codes to the posterior means E[q(z|x)] of the train split and stores
    it with the run (WORKDIR/sampler; tfvae/samplers, docs/samplers.md): from then on `sample`,
    `tfvae.draw`'s samples figure and `export` draw z from it, and so does `tfvae.load(workdir)`
    of these weights. What `python -m tfvae.fit_sampler` does.

    Args:
      kind: "gmm" (a Gaussian mixture, Ghosh et al. 2020), "two_stage" (a second VAE, Dai &
        Wipf 2019) or "standard" (the prior: removes the stored sampler).
      data: the run's data when it was trained from arrays; else None (read again).
      **options: gmm: num_components=10, covariance_type="full" (or tied, diag, spherical),
        reg_covar=1e-6, max_iter=100, seed=0; two_stage: second_latent_dim=0 (the code
        dimension), second_hidden_sizes=(256, 256), epochs=50, train_steps=0, batch_size=128,
        learning_rate=1e-3, seed=0 (samplers.GMMOptions, samplers.TwoStageOptions).

    Returns:
      The fitted Sampler, now also `self.sampler`.

    Raises:
      ConfigError: naming the flag, for an unknown kind, an option the kind does not take or a
        value that cannot run; for m2 (its codes depend on the class); standard for a model
        without a prior. Raised before any work.
      DataError: if the data cannot be read or differ from the run's.
      tfvae.lock.WorkdirInUse: if another process holds the workdir.
    """
    chosen = samplers.options(kind, **options)
    samplers.check_model(self.model, self.config.family, kind)
    with self._writing(True):
      data_read = None if kind == "standard" else self.data(data)
      self.sampler = samplers.fit(self.model, self.config, data_read, self.step,
                                  None if self.workdir is None else str(self.workdir), kind,
                                  chosen)
    return self.sampler

  def _terms_function(self) -> Any:
    """model.losses at the evaluation seed, traced once per model (tfvae/trained_bounds.py)."""
    if self._terms_fn is None:
      self._terms_fn = trained_bounds.terms_function(self.config, self.model, self.step)
    return self._terms_fn

  def _bound_function(self, num_importance_samples: int, chunk_size: int) -> Any:
    """The importance-weighted bound, traced once per model and (K, chunk_size)."""
    key = (int(num_importance_samples), int(chunk_size))
    if key not in self._bound_fns:
      self._bound_fns[key] = trained_bounds.bound_function(self.config, self.model, *key)
    return self._bound_fns[key]

  def elbo(self, x: np.ndarray, batch_size: int = 1000, label: Optional[Any] = None,
           condition: Optional[Any] = None) -> np.ndarray:
    """float32 numpy [N]: the ELBO of each example (nats; the evaluation noise, deterministic:
    example i gets the noise `evaluate` gives the i-th example of a split, whatever the
    batch_size). With --standardize it bounds the log-density of the standardized features.

    Traced once per model (a tf.function whose batch dimension is None): calls with other N
    or batch_size reuse it.

    Args:
      x: as in `encode`.
      batch_size: int >= 1, examples evaluated at once (bounds memory; results do not depend
        on it).
      label: the cvae on classes only, and required there: the class of each example,
        int [N] (or one int for all) in [0, K); the result is the ELBO of x given it.
      condition: the cvae on real conditions only, and required there: float [N, C] (or [C]
        for all), finite; the result is the ELBO of x given it.

    Raises:
      ValueError: for models without an ELBO (deterministic autoencoders), x of another shape,
        batch_size not an int >= 1, a label missing (cvae on classes), given to another model
        or not ints in [0, K) [N], a condition missing (cvae on conditions), given to another
        model or not finite floats [N, C] / [C] (one line naming it; before any work).
      DataError (a ValueError): x's values are not pixels, as in `encode`.
    """
    _check_int("batch_size", batch_size, 1)
    x = self._inputs(x)
    given = self._given(int(x.shape[0]), label, condition)
    terms = trained_bounds.batched(self._terms_function(), x, given, batch_size)
    if "elbo" not in terms:
      raise ValueError(f"--model={self.config.family} has no ELBO.")
    return terms["elbo"]

  def iwae_bound(self, x: np.ndarray, num_importance_samples: int = 1000,
                 chunk_size: int = 500, batch_size: int = 100,
                 label: Optional[Any] = None, condition: Optional[Any] = None) -> np.ndarray:
    """float32 numpy [N]: the importance-weighted bound on log p(x) (Burda et al. 2016), nats.

    Example i gets the noise `evaluate` gives the i-th example of a split, whatever the
    batch_size. Traced once per model and (K, chunk_size), with batch dimension None.

    Args:
      x: as in `encode`.
      num_importance_samples: int >= 1, K (K = 1 gives the ELBO's expectation).
      chunk_size: int >= 1, importance samples evaluated at once (bounds memory).
      batch_size: int >= 1, examples evaluated at once; memory grows with
        batch_size x chunk_size. Results do not depend on it.
      label, condition: the cvae only (label on classes, condition on real conditions), and
        required there, as in `elbo`: the bound on log p(x|c), importance sampling q(z|x, c)
        against p(x|z, c) p(z|c).

    Raises:
      ValueError: for models without a prior (deterministic autoencoders) or posterior (m2),
        num_importance_samples, chunk_size or batch_size not an int >= 1 (before any work),
        x as in `encode`.
    """
    if not isinstance(self.model, interface.LatentVariableModel):
      raise ValueError(f"--model={self.config.family} has no prior: no bound on log p(x).")
    if (isinstance(self.model, interface.LabelConditional)
        and not isinstance(self.model, interface.Conditional)):
      raise ValueError(f"--model={self.config.family}: q(z|x, y) needs a class; its bound on "
                       "log p(x) is the elbo (-U(x)).")
    _check_int("num_importance_samples", num_importance_samples, 1)
    _check_int("chunk_size", chunk_size, 1)
    _check_int("batch_size", batch_size, 1)
    x = self._inputs(x)
    given = self._given(int(x.shape[0]), label, condition)
    return trained_bounds.batched(self._bound_function(num_importance_samples, chunk_size),
                                  x, given, batch_size)

  def export(self, path: Optional[PathLike] = None) -> str:
    """Writes the SavedModel (tfvae/serving.py) to `path` (default WORKDIR/export); returns the
    folder written. Its `sample` signature draws z from `self.sampler` (a fitted one included:
    its tensors are exported, scikit-learn is not needed to load it).

    Raises:
      ValueError: without `path` for a model that has no workdir.
      tfvae.lock.WorkdirInUse: if another process holds the folder `path` is written into.
      tfvae.errors.ForeignLink: if `path` (or the folder's .tfvae.lock) is a link tfvae did not
        make (docs/running.md, links in a run folder).
    """
    from tfvae import serving  # pylint: disable=import-outside-toplevel
    if not path and not self.workdir:
      raise ValueError("This TrainedModel has no workdir: give export a path.")
    path = path or os.path.join(self.workdir or "", "export")
    return serving.export(self.model, path, step=self.step, sampler=self.sampler)
