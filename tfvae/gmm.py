"""Gaussian-mixture density baseline: `python -m tfvae.gmm --flagfile=configs/gmm_NAME.cfg`.

Fits `sklearn.mixture.GaussianMixture` to the uniformly dequantized training pixels
x = (y + u) / L (u ~ U[0, 1), L gray levels) and reports the test log-likelihood on exactly the
dequantized test pixels a VAE trained with `--binarization=dequantize` is evaluated on (the same
fixed noise), in nats per example and bits per dimension (evaluation.bits_per_dim). Writes
WORKDIR/gmm.json and WORKDIR/samples.png.
"""

import json
import os
import time

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


def fit_and_evaluate(config, num_components=10, covariance_type="full", reg_covar=1e-6,
                     max_iter=100, max_train_examples=0, seed=0):
  """Fits a Gaussian mixture to dequantized train pixels and scores the dequantized test split.

  Args:
    config: tfvae.config.Config naming dataset, data_dir and validation_fraction (binarization is
      forced to "dequantize").
    num_components, covariance_type, reg_covar, max_iter: sklearn GaussianMixture settings.
    max_train_examples: fit on the first N train examples (0: all).
    seed: int.

  Returns:
    (gmm, metrics, image_shape): the fitted sklearn GaussianMixture; a dict with test nll (nats
    per example), bits_per_dim, train nll, num_parameters, converged, n_iter, fit_seconds,
    num_train_examples, num_test_examples; and [H, W, C].

  Raises:
    tfvae.data.DataError: if the dataset cannot be had.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  from sklearn import mixture  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae import evaluation  # pylint: disable=import-outside-toplevel

  config = config_lib.Config.from_dict({**config.to_dict(), "binarization": "dequantize"})
  data = data_lib.load(config)
  levels = data.max_value + 1
  train = data.train.images[:max_train_examples or None].reshape(
      -1, int(np.prod(data.image_shape))).astype(np.float64)
  rng = np.random.default_rng(seed)
  train = (train + rng.random(train.shape)) / levels
  test = np.concatenate([b["image"].numpy() for b in data_lib.eval_dataset(data, "test", 1000)])
  test = test.reshape(len(test), -1).astype(np.float64)

  gmm = mixture.GaussianMixture(num_components, covariance_type=covariance_type,
                                reg_covar=reg_covar, max_iter=max_iter, random_state=seed)
  began = time.perf_counter()
  gmm.fit(train)
  fit_seconds = time.perf_counter() - began
  num_dims = train.shape[1]
  nll = -float(np.mean(gmm.score_samples(test)))
  metrics = {
      "nll": nll,
      "bits_per_dim": evaluation.bits_per_dim(nll, num_dims, levels),
      "train_nll": -float(np.mean(gmm.score_samples(train))),
      "num_parameters": int(gmm._n_parameters()),  # pylint: disable=protected-access
      "converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_),
      "fit_seconds": round(fit_seconds, 1), "num_train_examples": len(train),
      "num_test_examples": len(test), "pixel_levels": levels, "dataset": config.dataset,
      "num_components": num_components, "covariance_type": covariance_type,
      "reg_covar": reg_covar,
  }
  return gmm, metrics, data.image_shape


def sample_grid_figure(gmm, image_shape, num, seed, title):
  """A matplotlib Figure of `num` samples x ~ GMM, clipped to [0, 1], in a grid."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel

  gmm.random_state = seed
  images, _ = gmm.sample(num)
  grid = summaries.image_grid(images.reshape(num, *image_shape), 10)[0]
  fig, ax = plt.subplots(figsize=(7, 7.5))
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_xlabel(f"{num} samples x ~ GMM (clipped to [0, 1])")
  fig.suptitle(f"Gaussian mixture samples - {title}")
  np.random.seed(seed)
  return fig


def main(argv):
  del argv
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel

  workdir = FLAGS.workdir
  config = config_lib.Config(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                             validation_fraction=FLAGS.validation_fraction)
  gmm, metrics, image_shape = fit_and_evaluate(
      config, FLAGS.num_components, FLAGS.covariance_type, FLAGS.reg_covar, FLAGS.max_iter,
      FLAGS.max_train_examples, FLAGS.seed)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "gmm.json.tmp"), "w") as f:
    json.dump(metrics, f, indent=2)
  os.replace(os.path.join(workdir, "gmm.json.tmp"), os.path.join(workdir, "gmm.json"))
  title = f"{FLAGS.num_components} {FLAGS.covariance_type} components, {FLAGS.dataset}"
  fig = sample_grid_figure(gmm, image_shape, 100, FLAGS.seed, title)
  fig.savefig(os.path.join(workdir, "samples.png.tmp"), format="png", dpi=100,
              bbox_inches="tight")
  plt.close(fig)
  os.replace(os.path.join(workdir, "samples.png.tmp"), os.path.join(workdir, "samples.png"))
  logging.info("wrote %s", os.path.join(workdir, "gmm.json"))
  print(f"test nll {metrics['nll']:.2f} nats, {metrics['bits_per_dim']:.4f} bits/dim "
        f"({metrics['num_components']} {metrics['covariance_type']} components, "
        f"{metrics['num_train_examples']} train examples, fit {metrics['fit_seconds']} s)")


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.gmm", main)
