"""Entry point: `python -m tfvae.evaluate --workdir=DIR [--split=test] [--num_importance_samples=K]`.

Rebuilds the model from WORKDIR/config.json and its best checkpoint (else its latest),
evaluates one split under the run's distribution strategy, merges the result into WORKDIR/eval.json under a key that names
the split and K, e.g. "test_K5000" (other entries are kept; tfvae/workdir.py) and writes it to TensorBoard (WORKDIR/tensorboard/eval, tags prefixed
with the split and K). The standard report is --split=test --num_importance_samples=5000.

`--m1_labels=N` instead evaluates M1 (Kingma et al. 2014; tfvae/evaluation/ssl.py): logistic regression on
the posterior means of N labeled train examples (balanced, chosen by `--label_seed`), scored on
`--split`; the result is merged into eval.json under "m1_SPLIT_<N>labels_seed<S>".

`--sample_quality` instead measures samples against `--split` (TrainedModel.sample_quality;
tfvae/evaluation/sample_quality.py, docs/sample_quality.md): the Fréchet distance and k-NN
precision/recall in the features of `--feature_network` (domain_classifier: a classifier of the
dataset's classes, trained once and cached in `--feature_network_dir`), with
`--sample_quality_samples` samples of `--sampler`; merged into eval.json under
"sample_quality_SPLIT_NETWORK_SAMPLER_<N>samples_seed0" and written to TensorBoard (tags under the
same key).
"""

import json

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
                       "grows with batch_size x chunk_size. SIGTERM/Ctrl-C take effect when the batch in "
                       "flight ends (a batch is one TensorFlow call: K x batch_size decoder "
                       "passes), so at a large K a smaller batch stops sooner.", lower_bound=1)
  flags.DEFINE_integer("num_examples", 0, "Evaluate only the first N examples (0: all).",
                       lower_bound=0)
  flags.DEFINE_integer("m1_labels", 0, "If > 0: evaluate M1 instead, logistic regression on the "
                       "posterior means of this many labeled train examples (balanced across "
                       "classes).", lower_bound=0)
  flags.DEFINE_integer("label_seed", 0, "With --m1_labels: seed of the labeled subset.")
  flags.DEFINE_bool("sample_quality", False, "Measure sample quality instead: the Fréchet "
                    "distance and k-NN precision/recall of samples against --split, in the "
                    "features of --feature_network (docs/sample_quality.md).")
  flags.DEFINE_enum("feature_network", "domain_classifier", ["domain_classifier", "inception_v3"],
                    "With --sample_quality: domain_classifier (a classifier tfvae trains on the "
                    "dataset's labeled train split, offline; cached) or inception_v3 (ImageNet "
                    "weights, online: an Inception-v3 FID, not the reference graph of published FIDs).")
  flags.DEFINE_integer("sample_quality_samples", 0, "With --sample_quality: samples drawn (0: "
                       "as many as --split has examples).", lower_bound=0)
  flags.DEFINE_string("feature_network_dir", "", "With --sample_quality: folder of cached "
                      "domain classifiers (default DATA_DIR/tfvae_feature_networks, DATA_DIR the "
                      "run's --data_dir or ~/tensorflow_datasets).")
  flags.DEFINE_enum("sampler", None, ["standard", "gmm", "two_stage"], "With --sample_quality:"
                    " where the samples' codes come from (default: the sampler fitted to the "
                    "run, else the prior; docs/samplers.md).")


def _load(workdir):
  """The run's TrainedModel under the strategy it trained under (a multi-worker run evaluates in
  this process); a missing config.json is told before TensorFlow's import."""
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  from tfvae import lock  # pylint: disable=import-outside-toplevel
  try:
    config_io.load(workdir)
  except FileNotFoundError:  # a training that has not written it yet: name it
    lock.refuse_unfinished(workdir, config_io.CONFIG_FILENAME)
    raise
  cli.import_tensorflow()
  import tfvae  # pylint: disable=import-outside-toplevel
  return tfvae.load(workdir, strategy="run")


def main(argv):
  del argv
  if FLAGS.sample_quality:
    metrics = _load(FLAGS.workdir).sample_quality(
        num_samples=FLAGS.sample_quality_samples, feature_network=FLAGS.feature_network,
        split=FLAGS.split, cache_dir=FLAGS.feature_network_dir or None, sampler=FLAGS.sampler)
    logging.info("Sample quality on %s (%s, %s sampler, %d samples, %d real): Frechet distance "
                 "%.4f, precision %.4f, recall %.4f", metrics["split"], metrics["feature_network"],
                 metrics["sampler"],
                 metrics["num_samples"], metrics["num_real"], metrics["frechet_distance"],
                 metrics["precision"], metrics["recall"])
    print(json.dumps(workdir_lib.strict(metrics), indent=2))
    return
  if FLAGS.m1_labels:
    metrics = _load(FLAGS.workdir).m1_accuracy(FLAGS.m1_labels, FLAGS.label_seed, FLAGS.split)
    logging.info("M1 on %s: accuracy %.4f with %d labels (label_seed %d)", metrics["split"],
                 metrics["accuracy"], metrics["num_labels"], metrics["label_seed"])
    print(json.dumps(workdir_lib.strict(metrics), indent=2))
    return
  metrics = _load(FLAGS.workdir).evaluate(
      split=FLAGS.split, num_importance_samples=FLAGS.num_importance_samples,
      chunk_size=FLAGS.chunk_size, batch_size=FLAGS.batch_size, num_examples=FLAGS.num_examples)
  labels = {"iwae_bound": f"iwae_bound(K={metrics['num_importance_samples']})",
            "active_units": "active units"}
  headline = "  ".join(f"{labels.get(k, k)} {metrics[k]:.3f}" if isinstance(metrics[k], float)
                       else f"{labels.get(k, k)} {metrics[k]}" for k in (
      "elbo", "iwae_bound", "nll", "rate", "distortion", "squared_error", "active_units",
      "accuracy", "generative_accuracy") if k in metrics)
  logging.info("%s %s (%d examples, step %d): %s  [%.1f s]", metrics["dataset"],
               metrics["split"], metrics["num_examples"], metrics["step"], headline,
               metrics["wall_time_s"])
  print(json.dumps(workdir_lib.strict({k: v for k, v in metrics.items()
                                       if k != "rate_per_dimension"}), indent=2))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.evaluate", main)
