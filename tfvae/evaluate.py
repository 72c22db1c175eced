"""Entry point: `python -m tfvae.evaluate --workdir=DIR [--split=test] [--num_importance_samples=K]`.

Rebuilds the model from WORKDIR/config.json and its latest checkpoint, evaluates one split under
the run's distribution strategy, merges the result into WORKDIR/eval.json (one entry per split;
other splits are kept) and writes it to TensorBoard (WORKDIR/tensorboard/eval, tags prefixed
with the split and K). The standard report is --split=test --num_importance_samples=5000.
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags():
  """Defines this entry point's flags; called only from __main__, so importing defines none."""
  flags.DEFINE_string("workdir", None, "A tfvae run folder (config.json and ckpt/).")
  flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
  flags.DEFINE_integer("num_importance_samples", 5000, "K of the importance-weighted bound.",
                       lower_bound=1)
  flags.DEFINE_integer("chunk_size", 500, "Importance samples evaluated at once (bounds memory).",
                       lower_bound=1)
  flags.DEFINE_integer("batch_size", 100, "Examples per evaluation batch (global).", lower_bound=1)
  flags.DEFINE_integer("num_examples", 0, "Evaluate only the first N examples (0: all).",
                       lower_bound=0)


def evaluate_workdir(workdir, split, num_importance_samples, chunk_size=500, batch_size=100,
                     num_examples=0):
  """Evaluates the latest checkpoint of a run on one split and merges it into eval.json.

  Returns:
    dict of metrics (see evaluation.Evaluator) plus dataset, split, binarization,
    num_importance_samples, step and wall_time_s.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae import evaluation  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  from tfvae import trainer  # pylint: disable=import-outside-toplevel

  config = config_lib.load(workdir)
  trainer.split_cpu(config.num_cpu_devices)
  strategy = trainer.make_strategy(config)
  config, model, step = trainer.restore_model(workdir, strategy)
  data = data_lib.load(config)
  dataset = data_lib.eval_dataset(data, split, batch_size)
  if num_examples:
    dataset = dataset.unbatch().take(num_examples).batch(batch_size)
  began = time.perf_counter()
  metrics = evaluation.Evaluator(model, strategy, num_importance_samples, chunk_size)(dataset)
  metrics.update(dataset=config.dataset, split=split, binarization=config.binarization,
                 num_importance_samples=num_importance_samples, step=step,
                 wall_time_s=round(time.perf_counter() - began, 2))
  path = os.path.join(workdir, "eval.json")
  results = {}
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
  results[split] = metrics
  with open(path + ".tmp", "w") as f:
    json.dump(results, f, indent=2)
  os.replace(path + ".tmp", path)
  writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "eval"))
  summaries.write_scalars(writer, step, {
      f"{split}_K{num_importance_samples}/{k}": metrics[k]
      for k in ("elbo", "rate", "distortion", "iwae_bound", "nll", "active_units",
                "squared_error") if k in metrics})
  writer.close()
  return metrics


def main(argv):
  del argv
  metrics = evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.num_importance_samples,
                             FLAGS.chunk_size, FLAGS.batch_size, FLAGS.num_examples)
  labels = {"iwae_bound": f"iwae_bound(K={metrics['num_importance_samples']})"}
  headline = "  ".join(f"{labels.get(k, k)} {metrics[k]:.3f}" for k in (
      "elbo", "iwae_bound", "nll", "rate", "distortion", "squared_error") if k in metrics)
  logging.info("%s %s (%d examples, step %d): %s  active units %d  [%.1f s]",
               metrics["dataset"], metrics["split"], metrics["num_examples"], metrics["step"],
               headline, metrics["active_units"], metrics["wall_time_s"])
  print(json.dumps({k: v for k, v in metrics.items() if k != "rate_per_dimension"}, indent=2))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  app.run(main)
