"""Entry point: `python -m tfvae.evaluate --workdir=DIR [--split=test] [--num_importance_samples=K]`.

Rebuilds the model from WORKDIR/config.json and its latest checkpoint, evaluates one split under
the run's distribution strategy, merges the result into WORKDIR/eval.json under a key that names
the split and K, e.g. "test_K5000" (other entries are kept; tfvae/workdir.py) and writes it to TensorBoard (WORKDIR/tensorboard/eval, tags prefixed
with the split and K). The standard report is --split=test --num_importance_samples=5000.

`--m1_labels=N` instead evaluates M1 (Kingma et al. 2014; tfvae/evaluation/ssl.py): logistic regression on
the posterior means of N labeled train examples (balanced, chosen by `--label_seed`), scored on
`--split`; the result is merged into eval.json under "m1_SPLIT_<N>labels_seed<S>".
"""

import json
import os
import time

from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfvae import workdir as workdir_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  """Defines this entry point's flags; called only from __main__, so importing defines none."""
  flags.DEFINE_string("workdir", None, "A tfvae run folder (config.json and ckpt/).")
  flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
  flags.DEFINE_integer("num_importance_samples", 5000, "K of the importance-weighted bound.",
                       lower_bound=1)
  flags.DEFINE_integer("chunk_size", 500, "Importance samples evaluated at once (bounds memory).",
                       lower_bound=1)
  flags.DEFINE_integer("batch_size", 100, "Examples per evaluation batch (global). Results do "
                       "not depend on it (each example's noise is seeded by its index); memory "
                       "grows with batch_size x chunk_size.", lower_bound=1)
  flags.DEFINE_integer("num_examples", 0, "Evaluate only the first N examples (0: all).",
                       lower_bound=0)
  flags.DEFINE_integer("m1_labels", 0, "If > 0: evaluate M1 instead, logistic regression on the "
                       "posterior means of this many labeled train examples (balanced across "
                       "classes).", lower_bound=0)
  flags.DEFINE_integer("label_seed", 0, "With --m1_labels: seed of the labeled subset.")


def m1_workdir(workdir, num_labels, label_seed=0, split="test"):
  """M1 accuracy of a trained run (see tfvae.ssl.m1_accuracy), merged into eval.json under
  "m1_SPLIT_<N>labels_seed<S>" (tfvae/workdir.py).

  Args:
    workdir: a tfvae run folder whose model has an encoder.
    num_labels: int N > 0, labeled train examples (a multiple of the number of classes).
    label_seed: int, seed of the balanced subset.
    split: split scored.

  Returns:
    dict: accuracy in [0, 1], num_labels, label_seed, split, num_examples, step.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
    tfvae.data.DataError: if N does not fit the data.
  """
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer  # pylint: disable=import-outside-toplevel
  config, model, step = trainer.restore_model(workdir)
  metrics = ssl.m1_accuracy(model, data_lib.load(config), config, num_labels, label_seed, split)
  metrics["step"] = step
  workdir_lib.merge_eval_json(workdir, {workdir_lib.m1_key(split, num_labels, label_seed): metrics})
  return metrics


def evaluate_workdir(workdir, split, num_importance_samples, chunk_size=500, batch_size=100,
                     num_examples=0):
  """Evaluates the latest checkpoint of a run on one split and merges it into eval.json.

  Returns:
    dict of metrics (see evaluator_lib.Evaluator) plus dataset, split, binarization,
    num_importance_samples, step and wall_time_s.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import evaluator as evaluator_lib  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer  # pylint: disable=import-outside-toplevel

  config = config_lib.load(workdir)
  if config.strategy == "multi_worker":  # evaluated in this one process
    config = config_lib.Config.from_dict({**config.to_dict(), "strategy": "mirrored"})
  trainer.split_cpu(config.num_cpu_devices)
  strategy = trainer.make_strategy(config)
  config, model, step = trainer.restore_model(workdir, strategy)
  data = data_lib.load(config)
  dataset = data_lib.eval_dataset(data, split, batch_size)
  if num_examples:
    dataset = dataset.unbatch().take(num_examples).batch(batch_size)
  began = time.perf_counter()
  metrics = evaluator_lib.Evaluator(model, strategy, num_importance_samples, chunk_size)(dataset)
  metrics.update(dataset=config.dataset, split=split, binarization=config.binarization,
                 num_importance_samples=num_importance_samples, step=step,
                 wall_time_s=round(time.perf_counter() - began, 2))
  workdir_lib.merge_eval_json(workdir, {workdir_lib.eval_key(split, metrics): metrics})
  writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "eval"))
  summaries.write_scalars(writer, step, {
      f"{split}_K{num_importance_samples}/{k}": metrics[k]
      for k in ("elbo", "rate", "distortion", "iwae_bound", "nll", "active_units",
                "squared_error") if k in metrics})
  writer.close()
  return metrics


def main(argv):
  del argv
  if FLAGS.m1_labels:
    metrics = m1_workdir(FLAGS.workdir, FLAGS.m1_labels, FLAGS.label_seed, FLAGS.split)
    logging.info("M1 on %s: accuracy %.4f with %d labels (label_seed %d)", metrics["split"],
                 metrics["accuracy"], metrics["num_labels"], metrics["label_seed"])
    print(json.dumps(metrics, indent=2))
    return
  metrics = evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.num_importance_samples,
                             FLAGS.chunk_size, FLAGS.batch_size, FLAGS.num_examples)
  labels = {"iwae_bound": f"iwae_bound(K={metrics['num_importance_samples']})",
            "active_units": "active units"}
  headline = "  ".join(f"{labels.get(k, k)} {metrics[k]:.3f}" if isinstance(metrics[k], float)
                       else f"{labels.get(k, k)} {metrics[k]}" for k in (
      "elbo", "iwae_bound", "nll", "rate", "distortion", "squared_error", "active_units",
      "accuracy", "generative_accuracy") if k in metrics)
  logging.info("%s %s (%d examples, step %d): %s  [%.1f s]", metrics["dataset"],
               metrics["split"], metrics["num_examples"], metrics["step"], headline,
               metrics["wall_time_s"])
  print(json.dumps({k: v for k, v in metrics.items() if k != "rate_per_dimension"}, indent=2))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.evaluate", main)
