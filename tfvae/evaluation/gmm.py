"""Gaussian-mixture density baseline: fit to dequantized train pixels, scored in nats and bits/dim.

Fits `sklearn.mixture.GaussianMixture` to the uniformly dequantized training pixels
x = (y + u) / L (u ~ U[0, 1), L gray levels) and reports the test log-likelihood on exactly the
dequantized test pixels a VAE trained with `--binarization=dequantize` is evaluated on (the same
fixed noise), in nats per example and bits per dimension (evaluator.bits_per_dim).
`python -m tfvae.gmm` (tfvae/gmm.py) runs it and writes WORKDIR/gmm.json and samples.png.
"""

import time

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
  from tfvae.evaluation import evaluator as evaluator_lib  # pylint: disable=import-outside-toplevel

  config = config.replace(**{"binarization": "dequantize"})
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
      "bits_per_dim": evaluator_lib.bits_per_dim(nll, num_dims, levels),
      "train_nll": -float(np.mean(gmm.score_samples(train))),
      "num_parameters": int(gmm._n_parameters()),  # pylint: disable=protected-access
      "converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_),
      "fit_seconds": round(fit_seconds, 1), "num_train_examples": len(train),
      "num_test_examples": len(test), "pixel_levels": levels, "dataset": config.data.dataset,
      "num_components": num_components, "covariance_type": covariance_type,
      "reg_covar": reg_covar,
  }
  return gmm, metrics, data.image_shape


def sample_grid_figure(gmm, image_shape, num, seed, title):
  """A matplotlib Figure of `num` samples x ~ GMM, clipped to [0, 1], in a grid."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel

  previous, gmm.random_state = gmm.random_state, seed  # a RandomState of its own, not NumPy's
  try:
    images, _ = gmm.sample(num)
  finally:
    gmm.random_state = previous
  grid = summaries.image_grid(images.reshape(num, *image_shape), 10)[0]
  fig, ax = plt.subplots(figsize=(7, 7.5))
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_xlabel(f"{num} samples x ~ GMM (clipped to [0, 1])")
  fig.suptitle(f"Gaussian mixture samples - {title}")
  return fig
