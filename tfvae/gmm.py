"""Entry point: `python -m tfvae.gmm --flagfile=configs/gmm_NAME.cfg [--workdir=DIR]`.

The Gaussian-mixture density baseline of tfvae/evaluation/gmm.py: writes WORKDIR/gmm.json
(test nll in nats and bits/dim) and WORKDIR/samples.png.
"""

import os

from tfvae import atomic
from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  """Defines this entry point's flags; called only from __main__, so importing defines none."""
  flags.DEFINE_string("workdir", None, "Output folder (gmm.json, samples.png).")
  flags.DEFINE_string("dataset", "digits", "As tfvae.train's --dataset.")
  flags.DEFINE_string("data_dir", "", "As tfvae.train's --data_dir.")
  flags.DEFINE_float("validation_fraction", 1 / 6, "As tfvae.train's: the same train split.")
  flags.DEFINE_integer("num_components", 10, "Mixture components.", lower_bound=1)
  flags.DEFINE_enum("covariance_type", "full", ["full", "tied", "diag", "spherical"],
                    "sklearn GaussianMixture covariance_type.")
  flags.DEFINE_float("reg_covar", 1e-6, "Added to the covariance diagonals (sklearn reg_covar).",
                     lower_bound=0)
  flags.DEFINE_integer("max_iter", 100, "EM iterations at most.", lower_bound=1)
  flags.DEFINE_integer("max_train_examples", 0, "Fit on the first N train examples (0: all).",
                       lower_bound=0)
  flags.DEFINE_integer("seed", 0, "Seed of the initialization, the train noise and the samples.")


def main(argv):
  del argv
  cli.import_tensorflow()
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import gmm as gmm_lib  # pylint: disable=import-outside-toplevel

  workdir = FLAGS.workdir
  config = config_lib.Config(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                             validation_fraction=FLAGS.validation_fraction)
  mixture, metrics, image_shape = gmm_lib.fit_and_evaluate(
      config, FLAGS.num_components, FLAGS.covariance_type, FLAGS.reg_covar, FLAGS.max_iter,
      FLAGS.max_train_examples, FLAGS.seed)
  os.makedirs(workdir, exist_ok=True)
  atomic.write_json(os.path.join(workdir, "gmm.json"), metrics, indent=2)
  title = f"{FLAGS.num_components} {FLAGS.covariance_type} components, {FLAGS.dataset}"
  fig = gmm_lib.sample_grid_figure(mixture, image_shape, 100, FLAGS.seed, title)
  with atomic.replacing(os.path.join(workdir, "samples.png"), "wb") as f:
    fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
  logging.info("wrote %s", os.path.join(workdir, "gmm.json"))
  print(f"test nll {metrics['nll']:.2f} nats, {metrics['bits_per_dim']:.4f} bits/dim "
        f"({metrics['num_components']} {metrics['covariance_type']} components, "
        f"{metrics['num_train_examples']} train examples, fit {metrics['fit_seconds']} s)")


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.gmm", main)
