"""Which likelihood for my data: each choice measured on real data that works offline, printed as
the markdown table docs/data.md quotes.

  cd REPO && python - --workdir=/tmp/tfvae/likelihoods < tools/likelihood_table.py
  (or python tools/likelihood_table.py with tfvae installed from this checkout)

Data (all bundled with scikit-learn): the 8x8 digits (gray, 0..16); its two sample photographs
cut into 16x16x3 patches (2080); the breast cancer table (569x30 real values); the digits'
pixels as count vectors [1797, 64] (0..16). Each row trains the same MLP (256-128, latent 16,
batch 64, Adam 1e-3) for --steps steps and reports, on the test split: the ELBO (nats per
example; comparable only between rows of one block with the same kind of likelihood: a
probability of binary pixels or counts, or a density), the RMSE of the reconstruction (decoder
mean at the posterior mean) and of one sample of p(x|z) at the posterior mean, against the
data: pixels in [0, 1], table features in standard deviations, counts in counts.
"""

import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.getcwd())  # the checkout it is run from (see the module docstring)

flags.DEFINE_string("workdir", "/tmp/tfvae/likelihoods", "Where the runs are written.")
flags.DEFINE_integer("steps", 1500, "Train steps of each run.")
FLAGS = flags.FLAGS

BASE = dict(hidden_sizes=(256, 128), latent_dim=16, batch_size=64, eval_importance_samples=0,
            steps_per_loop=100, checkpoint_every=10000, strategy="one_device")


def _rows():
  import tfvae  # pylint: disable=import-outside-toplevel
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  digit_images = tfvae.data.from_arrays(digits.images.astype(np.uint8), digits.target,
                                        max_value=16)
  photos = tfvae.data.from_arrays(tfvae.data.photo_patches(16))
  cancer = datasets.load_breast_cancer()
  table = tfvae.data.from_arrays(cancer.data, cancer.target)
  counts = tfvae.data.from_arrays(digits.data.astype(np.float32), digits.target)
  return [
      ("gray digits 8x8 (0..16)", digit_images, "dynamic", "bernoulli", {}),
      ("gray digits 8x8 (0..16)", digit_images, "none", "bernoulli", {}),
      ("gray digits 8x8 (0..16)", digit_images, "none", "continuous_bernoulli", {}),
      ("photo patches 16x16x3", photos, "dynamic", "bernoulli", {}),
      ("photo patches 16x16x3", photos, "none", "bernoulli", {}),
      ("photo patches 16x16x3", photos, "none", "continuous_bernoulli", {}),
      ("photo patches 16x16x3", photos, "none", "normal", {}),
      ("photo patches 16x16x3", photos, "none", "laplace", {}),
      ("breast cancer table 569x30", table, "none", "normal", {"standardize": True}),
      ("breast cancer table 569x30", table, "none", "laplace", {"standardize": True}),
      ("digit pixels as counts [1797, 64]", counts, "none", "poisson", {}),
      ("digit pixels as counts [1797, 64]", counts, "none", "negative_binomial", {}),
      ("digit pixels as counts [1797, 64]", counts, "none", "normal", {}),
  ]


def _measure(name, source, binarization, likelihood, extra, index):
  import tfvae  # pylint: disable=import-outside-toplevel
  config = tfvae.Config(**BASE, **extra, train_steps=FLAGS.steps, binarization=binarization,
                        likelihood=likelihood)
  workdir = os.path.join(FLAGS.workdir, f"{index:02d}")
  began = time.perf_counter()
  model = tfvae.fit(config, workdir, data=source, overwrite=True)
  seconds = time.perf_counter() - began
  results = model.results
  test = model.data(source).test
  images = len(model.config.data.image_shape) == 3
  if images:  # pixels in [0, 1]
    x, unit = (test.images / (model.config.data.pixel_levels - 1)).astype(np.float32), 1.0
  else:  # raw features; errors in the train split's standard deviations (--standardize), or raw
    unit = np.asarray(model.config.data.feature_scale or 1.0, np.float32)
    x = (test.images * unit + np.asarray(model.config.data.feature_mean or 0.0)).astype(np.float32)
  q_z = model.encode(x)
  mean = model.reconstruct(x)
  draw = np.asarray(model.decode(np.asarray(q_z.mean())).sample(seed=1))
  draw = model._raw(draw)  # pylint: disable=protected-access
  rmse = lambda y: float(np.sqrt(np.mean(((y - x) / unit) ** 2)))
  return (f"| {name} | {binarization} | {likelihood}{' --standardize' if extra else ''} | "
          f"{results['test']['elbo']:.1f} | {rmse(mean):.3f} | {rmse(draw):.3f} | {seconds:.0f} |")


def main(argv):
  del argv
  lines = ["| data | --binarization | --likelihood | test ELBO (nats) | reconstruction RMSE | "
           "sample RMSE | train s |", "|---|---|---|---|---|---|---|"]
  for index, row in enumerate(_rows()):
    lines.append(_measure(*row, index))
    print(lines[-1], flush=True)
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
