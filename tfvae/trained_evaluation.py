"""TrainedModel's evaluations of a split (tfvae/trained.py): evaluate, m1_accuracy and
sample_quality, their results merged into WORKDIR/eval.json under the workdir's lock.

`Evaluations` is a base class of tfvae.TrainedModel: its methods are TrainedModel's
(`tfvae.TrainedModel.evaluate` etc.), as are `data` (the run's data read again) and `_writing`
(the lock a call that writes into the workdir takes), which fit_sampler uses too.
"""

import contextlib
import os
import time
from typing import Any, Optional

import tensorflow as tf

from tfvae import data as data_lib
from tfvae import lock
from tfvae import summaries
from tfvae import workdir as workdir_lib
from tfvae.config import Config
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.model_inputs import as_source, DataLike, PathLike
from tfvae.model_inputs import check_int as _check_int, check_split as _check_split
from tfvae.serving import MAX_SAMPLES


class Evaluations:
  """TrainedModel's methods that evaluate a split (see tfvae.TrainedModel for its attributes)."""

  config: Config
  model: Any
  step: int
  workdir: Optional[PathLike]
  strategy: tf.distribute.Strategy

  def data(self, source: Optional[DataLike] = None) -> data_lib.Data:
    """The run's Data: `source` (given to `fit`) or config.data.dataset read again, checked against
    the run's data fingerprint (tfvae.data.load)."""
    return data_lib.load(self.config, as_source(source))

  def evaluate(self, data: Optional[DataLike] = None, split: str = "test",
               num_importance_samples: int = 5000, chunk_size: int = 500,
               batch_size: int = 100, num_examples: int = 0,
               write: bool = True) -> dict[str, Any]:
    """Evaluates one split; what `python -m tfvae.evaluate` does.

    Args:
      data: the run's data when it was trained from arrays (a Source or numpy array); else
        None (config.data.dataset is read again).
      split: "train", "validation" or "test".
      num_importance_samples: K of the importance-weighted bound.
      chunk_size: importance samples evaluated at once (bounds memory).
      batch_size: examples per batch; results do not depend on it.
      num_examples: evaluate only the first N examples (0: all).
      write: merge the result into WORKDIR/eval.json under e.g. "test_K5000" and write it to
        TensorBoard (WORKDIR/tensorboard/eval).

    Returns:
      dict of metrics (tfvae.evaluation.evaluator.Evaluator) plus dataset, split,
      binarization, num_importance_samples, step and wall_time_s.

    Raises:
      ValueError: split not one of the three, num_importance_samples, chunk_size or batch_size
        not an int >= 1, num_examples not an int >= 0 (each named, before any work).
      DataError: if the data cannot be read or differ from the run's.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir (checked
        before the evaluation runs; so is the workdir's writability, ConfigError).
    """
    _check_split(split)
    _check_int("num_importance_samples", num_importance_samples, 1)
    _check_int("chunk_size", chunk_size, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("num_examples", num_examples, 0)
    with self._writing(write):
      return self._evaluate(data, split, num_importance_samples, chunk_size, batch_size,
                            num_examples, write)

  def _writing(self, write: bool) -> contextlib.AbstractContextManager[Any]:
    """The workdir's lock (tfvae/lock.py) when a call writes into it, taken before the work."""
    return lock.hold(self.workdir) if write and self.workdir else contextlib.nullcontext()

  def _evaluate(self, data: Optional[DataLike], split: str, num_importance_samples: int,
                chunk_size: int, batch_size: int, num_examples: int,
                write: bool) -> dict[str, Any]:
    dataset = data_lib.eval_dataset(self.data(data), split, batch_size)
    if num_examples:
      dataset = dataset.unbatch().take(num_examples).batch(batch_size)
    began = time.perf_counter()
    metrics = evaluator_lib.Evaluator(self.model, self.strategy, num_importance_samples,
                                      chunk_size)(dataset)
    metrics.update(dataset=self.config.data.dataset, split=split,
                   binarization=self.config.data.binarization,
                   num_importance_samples=num_importance_samples, step=self.step,
                   wall_time_s=round(time.perf_counter() - began, 2))
    if write and self.workdir:
      workdir_lib.merge_eval_json(self.workdir, {workdir_lib.eval_key(split, metrics): metrics})
      writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tensorboard", "eval"))
      summaries.write_scalars(writer, self.step, {
          f"{split}_K{num_importance_samples}/{k}": metrics[k]
          for k in ("elbo", "rate", "distortion", "iwae_bound", "nll", "active_units",
                    "squared_error") if k in metrics})
      writer.close()
    return metrics

  def m1_accuracy(self, num_labels: int, label_seed: int = 0, split: str = "test",
                  data: Optional[DataLike] = None, write: bool = True) -> dict[str, Any]:
    """M1 (Kingma et al. 2014): logistic regression on posterior means of `num_labels` balanced
    labeled train examples, scored on `split` (tfvae.evaluation.ssl.m1_accuracy); merged into
    eval.json under "m1_SPLIT_<N>labels_seed<S>".

    Returns:
      dict: accuracy in [0, 1], num_labels, label_seed, split, num_examples, step.

    Raises:
      ValueError: split not "train", "validation" or "test" (before any work).
      DataError: if N does not fit the data.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir.
    """
    _check_split(split)
    from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
    with self._writing(write):
      return self._m1_accuracy(ssl, num_labels, label_seed, split, data, write)

  def _m1_accuracy(self, ssl: Any, num_labels: int, label_seed: int, split: str,
                   data: Optional[DataLike], write: bool) -> dict[str, Any]:
    metrics = ssl.m1_accuracy(self.model, self.data(data), self.config, num_labels, label_seed,
                              split)
    metrics["step"] = self.step
    if write and self.workdir:
      workdir_lib.merge_eval_json(self.workdir, {
          workdir_lib.m1_key(split, num_labels, label_seed): metrics})
    return metrics

  def sample_quality(self, num_samples: int = 0, feature_network: str = "domain_classifier",
                     split: str = "test", seed: int = 0, k: int = 3,
                     data: Optional[DataLike] = None, cache_dir: Optional[PathLike] = None,
                     write: bool = True, sampler: Optional[str] = None) -> dict[str, Any]:
    """How close samples are to real examples in a network's feature space; what
    `python -m tfvae.evaluate --sample_quality` does (tfvae/evaluation/sample_quality.py).

    The decoder means of `num_samples` draws of `sample` (images clipped to [0, 1]) are compared
    with the split's examples (images as gray levels in [0, 1], never binarized; vectors in raw
    units) in the features of `feature_network`: "domain_classifier", a classifier tfvae trains
    on the dataset's labeled train split and caches in `cache_dir` (the "FID with a domain
    classifier": comparable only between runs measured with the same classifier, not with
    ImageNet-Inception FIDs), or "inception_v3" (ImageNet weights, online: an Inception-v3 FID,
    not comparable with published ones).

    Args:
      num_samples: int in [0, 65536], samples drawn (0: as many as the split has examples).
      feature_network: "domain_classifier" or "inception_v3" (images only).
      split: the real examples: "train", "validation" or "test".
      seed: int32, the samples' seed.
      k: int >= 1, neighbours of the k-NN manifolds of precision and recall.
      data: the run's data when it was trained from arrays; else None.
      cache_dir: folder of cached classifiers (default DATA_DIR/tfvae_feature_networks, DATA_DIR
        the run's --data_dir or ~/tensorflow_datasets).
      write: merge the result into WORKDIR/eval.json under
        "sample_quality_SPLIT_NETWORK_SAMPLER_<N>samples_seed<S>" and write frechet_distance, precision
        and recall to TensorBoard (WORKDIR/tensorboard/eval, tags under that same key + "/").
      sampler: where the samples' codes come from, as in `sample`: None (the run's fitted
        sampler, else the prior), "standard", "gmm" or "two_stage" (the kind fitted).

    Returns:
      dict: frechet_distance (Heusel et al. 2017; squared feature units, >= 0, lower is better),
      precision and recall in [0, 1] (Kynkäänniemi et al. 2019, k-NN manifolds; higher is
      better); reference_frechet_distance, reference_precision, reference_recall: the same for
      num_reference real examples of reference_split (train; validation when split is train)
      in place of samples (the floor at this N): num_samples of them drawn at random from
      `seed`, or all when it has fewer (a warning says so); feature_network, feature_dim, k,
      num_real, num_samples, num_reference, split, seed, dataset, step, wall_time_s; with the
      domain classifier its test accuracy (classifier_test_accuracy) and folder (classifier),
      and for label-conditional models (m2, cvae) class_sample_accuracy: the classifier's
      accuracy on num_samples // K samples drawn for each class k (labelled k), with
      class_sample_accuracy_per_class (K floats) and class_samples_per_class.

    Raises:
      ValueError: an argument out of range (named, before any work).
      tfvae.ConfigError: a model that cannot sample (no prior), inception_v3 for vectors or
        without its weights (offline).
      DataError: data that cannot be read, or no labels for the domain classifier.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir.
    """
    from tfvae.evaluation import sample_quality  # pylint: disable=import-outside-toplevel
    _check_split(split)
    _check_int("num_samples", num_samples, 0, MAX_SAMPLES)
    _check_int("seed", seed, -2 ** 31, 2 ** 31 - 1, " (an int32)")
    _check_int("k", k, 1)
    if 0 < num_samples <= k:
      raise ValueError(f"num_samples={num_samples}: expected more than k={k} (the k-NN radii of "
                       "precision and recall), or 0 for as many as the split has.")
    if feature_network not in ("domain_classifier", "inception_v3"):
      raise ValueError(f"feature_network={feature_network!r}: expected 'domain_classifier' or "
                       "'inception_v3'.")
    with self._writing(write):
      return sample_quality.measure(self, num_samples, feature_network, split, seed, k,
                                    as_source(data), os.fspath(cache_dir) if cache_dir else None,
                                    write, sampler=sampler)
