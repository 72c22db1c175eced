"""Sample quality: the Fréchet distance and k-NN precision and recall of a model's samples against
real examples, in the feature space of a network (tfvae/evaluation/feature_networks.py).

With `feature_network="domain_classifier"` (the default, offline) the features are those of a
classifier trained on the dataset's own labels: the "FID with a domain classifier". Its numbers
compare models measured with the same cached classifier (same dataset, same split), never with
ImageNet-Inception FIDs from papers; `feature_network="inception_v3"` gives those (online).

References:
  Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs Trained by a Two Time-Scale Update
  Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (the Fréchet distance, FID).
  Dowson & Landau, "The Fréchet distance between multivariate normal distributions", J.
  Multivariate Anal. 1982 (its closed form).
  Kynkäänniemi, Karras, Laine, Lehtinen & Aila, "Improved Precision and Recall Metric for
  Assessing Generative Models", NeurIPS 2019 (k-NN manifolds).
"""

import os
import time
from typing import Any, Optional

from absl import logging
import numpy as np

from tfvae.errors import ConfigError
from tfvae.models import interface
from tfvae.evaluation import feature_networks

SAMPLE_CHUNK = 1000  # samples drawn per TrainedModel.sample call (bounds the decoder's memory)
DEFAULT_K = 3


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """The symmetric PSD square root of a symmetric matrix (negative eigenvalues, rounding
  errors of a PSD one, set to 0)."""
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_gaussians(mu1: Any, cov1: Any, mu2: Any, cov2: Any) -> float:
  """The squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

  |mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)) (Dowson & Landau 1982; the FID of
  Heusel et al. 2017 on Inception features). Tr (cov1 cov2)^(1/2) is computed as the sum of the
  singular values of cov1^(1/2) cov2^(1/2) (symmetric PSD square roots by eigendecomposition),
  in float64: real, and accurate also for singular covariances (fewer examples than features),
  where the square root of cov1 cov2 (scipy.linalg.sqrtm) turns rounding errors into imaginary
  parts and errors of the order of the square root of the rounding.

  Args:
    mu1, mu2: float [F] means. cov1, cov2: float [F, F] symmetric PSD covariances.

  Returns:
    float >= 0, in squared feature units.

  Raises:
    ValueError: if the shapes do not fit.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  dim = mu1.shape[0] if mu1.ndim == 1 else -1
  if mu2.shape != (dim,) or cov1.shape != (dim, dim) or cov2.shape != (dim, dim):
    raise ValueError(f"frechet_distance_gaussians: mu1 {mu1.shape}, cov1 {cov1.shape}, mu2 "
                     f"{mu2.shape}, cov2 {cov2.shape}; expected [F], [F, F], [F], [F, F].")
  trace_sqrt = np.sum(np.linalg.svd(_psd_sqrt(cov1) @ _psd_sqrt(cov2), compute_uv=False))
  value = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
  return float(max(value, 0.0))


def _checked_features(name: str, features: Any, min_rows: int = 2) -> np.ndarray:
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < min_rows:
    raise ValueError(f"{name} has shape {features.shape}; expected [N, F] with N >= {min_rows}.")
  if not np.all(np.isfinite(features)):
    raise ValueError(f"{name} holds NaN or inf.")
  return features


def frechet_distance(features_a: Any, features_b: Any) -> float:
  """The Fréchet distance between Gaussians fitted to two sets of features (FID's formula).

  Args:
    features_a: float [N, F]; features_b: float [M, F]; N, M >= 2.

  Returns:
    float >= 0, squared feature units: `frechet_distance_gaussians` of the sample means and
    (unbiased, N - 1) covariances. 0 for a set against itself; |d|^2 against a copy shifted by d.
    Biased upwards at finite N: compare numbers at the same N.

  Raises:
    ValueError: for other shapes, different F, or non-finite features.
  """
  a = _checked_features("features_a", features_a)
  b = _checked_features("features_b", features_b)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"features_a has {a.shape[1]} features, features_b {b.shape[1]}.")
  return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], -1),
                                    b.mean(0), np.cov(b, rowvar=False).reshape(b.shape[1], -1))


def _radii(features: np.ndarray, k: int) -> np.ndarray:
  """[N]: each point's distance to its k-th nearest other point of the set."""
  from sklearn.neighbors import NearestNeighbors  # pylint: disable=import-outside-toplevel
  distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
  return distances[:, k]  # column 0 is the point itself


def _fraction_inside(points: np.ndarray, centers: np.ndarray, radii: np.ndarray,
                     batch_size: int = 1000) -> float:
  """The fraction of `points` inside at least one ball (centers [M, F], radii [M])."""
  inside = 0
  squared_centers = np.sum(centers ** 2, 1)
  for i in range(0, len(points), batch_size):
    chunk = points[i:i + batch_size]
    squared = np.sum(chunk ** 2, 1)[:, None] + squared_centers[None] - 2 * chunk @ centers.T
    distances = np.sqrt(np.clip(squared, 0, None))
    inside += int(np.sum(np.any(distances <= radii[None] * (1 + 1e-12), axis=1)))
  return inside / len(points)


def precision_recall(real_features: Any, fake_features: Any,
                     k: int = DEFAULT_K) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds.

  The manifold of a set is the union of balls around its points, each of radius the distance
  to the point's k-th nearest neighbour in the set. Precision is the fraction of fake points
  inside the real manifold (samples that look real); recall the fraction of real points inside
  the fake manifold (how much of the data the samples cover). Euclidean distances in feature
  space; the radii depend on the set sizes: compare at equal sizes.

  Args:
    real_features: float [N, F]; fake_features: float [M, F]; N, M > k.
    k: int >= 1 (the paper's 3).

  Returns:
    (precision, recall), floats in [0, 1]: 1 and 1 for identical sets, 0 and 0 for sets far
    apart.

  Raises:
    ValueError: for other shapes, different F, sets of k or fewer points, or k < 1.
  """
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k={k!r}: expected an int >= 1.")
  real = _checked_features("real_features", real_features, k + 1)
  fake = _checked_features("fake_features", fake_features, k + 1)
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real_features has {real.shape[1]} features, fake_features "
                     f"{fake.shape[1]}.")
  precision = _fraction_inside(fake, real, _radii(real, k))
  recall = _fraction_inside(real, fake, _radii(fake, k))
  return precision, recall


def real_data(config: Any, source: Any = None) -> Any:
  """The run's Data as the feature networks see it: images not binarized (gray levels), vectors
  not standardized (raw units). `source` as `tfvae.data.load`."""
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  return data_lib.load(config.replace(binarization="none", standardize=False), source)


def inputs(data: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(x, labels) of a split of `real_data`: images float32 [N, H, W, C] in [0, 1], vectors
  float32 [N, D] raw; labels int64 [N] (-1 unknown)."""
  part = getattr(data, split)
  x = part.images.astype(np.float32)
  return (x / data.max_value if x.ndim == 4 else x), part.labels


def classifier_for(config: Any, data: Any, cache_dir: Optional[str] = None) -> Any:
  """The DomainClassifier of a run's dataset (feature_networks.domain_classifier on its train
  and test splits), from `cache_dir`, default DATA_DIR/tfvae_feature_networks (--data_dir)."""
  return feature_networks.domain_classifier(
      *inputs(data, "train"), *inputs(data, "test"), dataset=config.data.dataset,
      cache_dir=cache_dir or feature_networks.default_cache_dir(config.execution.data_dir))


def eval_key(split: str, feature_network: str, sampler: str, num_samples: int,
             seed: int) -> str:
  """The eval.json key of a result: sample_quality_SPLIT_NETWORK_SAMPLER_<N>samples_seed<S>."""
  return f"sample_quality_{split}_{feature_network}_{sampler}_{num_samples}samples_seed{seed}"


def reference_indices(num_available: int, num_samples: int, seed: int) -> np.ndarray:
  """int64 [min(num_samples, num_available)]: which examples of the reference split make the
  floor: a random subset without replacement, sorted, drawn by a numpy Generator seeded from
  (`seed`, 1) (no global state; the same seed gives the same subset); all of them, in order,
  when num_samples >= num_available (the floor is then measured at fewer than num_samples)."""
  if num_samples >= num_available:
    return np.arange(num_available, dtype=np.int64)
  rng = np.random.default_rng([seed % 2 ** 32, 1])
  return np.sort(rng.choice(num_available, num_samples, replace=False)).astype(np.int64)


def draw(trained: Any, num_samples: int, seed: int, sampler: Optional[str] = None) -> np.ndarray:
  """float32 [num_samples, *data_shape]: decoder means of `trained.sample` (with `sampler`:
  None the run's, "standard", "gmm", "two_stage"), in chunks of SAMPLE_CHUNK (chunk i with a
  seed drawn from (seed, i)); images clipped to [0, 1]."""
  seeds = np.random.SeedSequence([seed % 2 ** 32]).generate_state(
      -(-num_samples // SAMPLE_CHUNK), np.uint32) >> 1  # int32 >= 0
  parts = [trained.sample(min(SAMPLE_CHUNK, num_samples - i * SAMPLE_CHUNK), int(s),
                          sampler=sampler)["mean"]
           for i, s in enumerate(seeds)]
  x = np.concatenate(parts).astype(np.float32)
  return np.clip(x, 0, 1) if x.ndim == 4 else x


def measure(trained: Any, num_samples: int = 0, feature_network: str = "domain_classifier",
            split: str = "test", seed: int = 0, k: int = DEFAULT_K, source: Any = None,
            cache_dir: Optional[str] = None, write: bool = True,
            inception_weights: Optional[str] = "imagenet",
            sampler: Optional[str] = None) -> dict[str, Any]:
  """What TrainedModel.sample_quality returns (see there); arguments checked by the caller."""
  from tfvae import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  config = trained.config
  if feature_network == "inception_v3" and len(config.data.image_shape) != 3:
    raise ConfigError(f"--feature_network=inception_v3 takes images; --dataset="
                      f"{config.data.dataset} holds vectors: use domain_classifier.")
  try:
    trained.sample(0, seed, sampler=sampler)  # a model that cannot sample says so first
  except ValueError as e:  # e.g. an autoencoder without a prior: one line on the command line
    raise ConfigError(f"--sample_quality: {e}") from None
  began = time.perf_counter()
  data = real_data(config, source)
  real_x, _ = inputs(data, split)
  num_samples = num_samples or len(real_x)
  metrics: dict[str, Any] = {}
  if feature_network == "domain_classifier":
    network = classifier_for(config, data, cache_dir)
    metrics.update(classifier_test_accuracy=network.info["test_accuracy"],
                   classifier=network.path)
  else:
    network = feature_networks.InceptionFeatures(inception_weights)
  real = network.features(real_x)
  fake = network.features(draw(trained, num_samples, seed, sampler))
  # The floor: real examples of another split in place of samples (what a copy of the data
  # would score at this N): a random subset, drawn from `seed`.
  reference_split = "validation" if split == "train" else "train"
  reference_x = inputs(data, reference_split)[0]
  chosen = reference_indices(len(reference_x), num_samples, seed)
  if len(chosen) < num_samples:
    logging.warning("sample_quality: the %s split has %d examples, fewer than num_samples=%d: "
                    "the floor (reference_*) is measured with all of them (num_reference=%d).",
                    reference_split, len(chosen), num_samples, len(chosen))
  reference = network.features(reference_x[chosen])
  metrics.update(frechet_distance=frechet_distance(real, fake),
                 **dict(zip(("precision", "recall"), precision_recall(real, fake, k))),
                 reference_frechet_distance=frechet_distance(real, reference),
                 **dict(zip(("reference_precision", "reference_recall"),
                            precision_recall(real, reference, k))))
  if feature_network == "domain_classifier" and isinstance(trained.model,
                                                          interface.LabelConditional):
    metrics.update(_class_sample_accuracy(trained, network, num_samples, seed))
  metrics.update(feature_network=feature_network, feature_dim=int(real.shape[1]), k=k,
                 num_real=len(real), num_samples=num_samples, reference_split=reference_split,
                 num_reference=len(reference),
                 sample_output="mean", sampler=trained.sampler_kind(sampler), split=split,
                 seed=seed, dataset=config.data.dataset,
                 step=trained.step, wall_time_s=round(time.perf_counter() - began, 2))
  if write and trained.workdir:
    _write(trained, metrics, workdir_lib)
  return metrics


def _class_sample_accuracy(trained: Any, network: Any, num_samples: int,
                           seed: int) -> dict[str, Any]:
  """Label-conditional models (m2, cvae): the domain classifier's accuracy on samples drawn for
  each class (tfvae/evaluation/conditional.py), num_samples // K per class."""
  from tfvae.evaluation import conditional  # pylint: disable=import-outside-toplevel
  per_class = max(1, num_samples // trained.model.num_classes)
  result = conditional.conditional_sample_accuracy(trained, network.classify, per_class, seed)
  return {"class_sample_accuracy": result["accuracy"],
          "class_sample_accuracy_per_class": result["per_class"],
          "class_samples_per_class": per_class}


def _write(trained: Any, metrics: dict[str, Any], workdir_lib: Any) -> None:
  """Merges `metrics` into eval.json under `eval_key` and writes its numbers to TensorBoard's
  eval folder under the same identity, tags KEY/NAME
  (sample_quality_SPLIT_NETWORK_SAMPLER_<N>samples_seed<S>/frechet_distance, ...), so that
  measurements with another N or seed are curves of their own."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  key = eval_key(metrics["split"], metrics["feature_network"], metrics["sampler"],
                 metrics["num_samples"], metrics["seed"])
  workdir_lib.merge_eval_json(trained.workdir, {key: metrics})
  writer = tf.summary.create_file_writer(os.path.join(trained.workdir, "tensorboard", "eval"))
  summaries.write_scalars(writer, trained.step, {
      f"{key}/{name}": metrics[name]
      for name in ("frechet_distance", "precision", "recall", "class_sample_accuracy")
      if name in metrics})
  writer.close()
