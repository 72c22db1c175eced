"""The calibrated shared-scale `normal` likelihood (sigma-VAE, issue 33 item 4) against the
scale learned by gradient (tfvae before it), at equal steps on the same data, printed as the
markdown table docs/data.md quotes.

  cd REPO && python - --steps=250,1000,2000 < tools/sigma_table.py

Data (offline, bundled with scikit-learn): the two sample photographs cut into non-overlapping
32x32x3 patches (520; --patch=16: 16x16x3, 2080), and the 8x8 digits' gray levels (0..16 -> [0,
1]). Each run trains the same MLP VAE (256-128, latent 16, batch 64, Adam 1e-3,
--likelihood=normal, --binarization=none, seed 0) and reports, at each step count, the test ELBO
(nats per example, one sample; a lower bound with the stored sigma), the stored sigma and the
test reconstruction RMSE (decoder mean at the posterior mean, pixels in [0, 1]). Rows:
"learned": the calibration off (decoder.calibrated = False): sigma = softplus(raw_scale) + 1e-3
trained by Adam from 1, the loss before issue 33 item 4; "train-fitted": the sigma-VAE loss,
evaluated with the moving average of the train batches' optimal sigma; "held-out": the same run
(the same weights) evaluated after `Trainer.calibrate` fitted sigma on the validation split, as
a training run does at every validation. The moving average is put back after each held-out
evaluation, so the train-fitted row is that of a run that never calibrates.
"""

import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.getcwd())  # the checkout it is run from (see the module docstring)

flags.DEFINE_string("steps", "250,1000,2000", "Step counts at which to evaluate.")
flags.DEFINE_string("datasets", "photos,digits", "Which data: photos, digits.")
flags.DEFINE_integer("patch", 32, "Side of the photo patches (32: 520 patches; 16: 2080).")
FLAGS = flags.FLAGS

BASE = dict(hidden_sizes=(256, 128), latent_dim=16, batch_size=64, likelihood="normal",
            binarization="none", strategy="one_device", seed=0)


def sources():
  import tfvae  # pylint: disable=import-outside-toplevel
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  size = FLAGS.patch
  return {"photos": (f"photo patches {size}x{size}x3",
                     tfvae.data.from_arrays(tfvae.data.photo_patches(size))),
          "digits": ("gray digits 8x8", tfvae.data.from_arrays(
              digits.images.astype(np.uint8), digits.target, max_value=16))}


def curve(source, calibrated, steps):
  """{row name: [(step, test ELBO, sigma, test reconstruction RMSE)]} of one run."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tfvae  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import workdir_setup  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  config = workdir_setup.with_source(tfvae.Config(**BASE, train_steps=max(steps)), source)
  data = data_lib.load(config, source)
  config = workdir_setup.resolve(config, data)
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  decoder = trainer.model.decoder
  decoder.calibrated = calibrated  # before the first step is traced
  iterator = trainer.train_iterator(data)
  test = data_lib.eval_dataset(data, "test", 1000)
  validation = data_lib.eval_dataset(data, "validation", 1000)
  x = data.test.images.astype(np.float32) / data.max_value
  rows, done = {}, 0

  def row(name, step):
    elbo = trainer.evaluate(test)["elbo"]
    recon = trainer.model.reconstruct(tf.constant(x)).numpy()
    sigma = float(tf.reduce_mean(decoder.scale()))
    rows.setdefault(name, []).append(
        (step, elbo, sigma, float(np.sqrt(np.mean((recon - x) ** 2)))))

  for step in steps:
    trainer.train(iterator, step - done)
    done = step
    row("train-fitted" if calibrated else "learned", step)
    if calibrated:
      moving_average = decoder.raw_scale.numpy()
      trainer.calibrate(validation)
      row("held-out", step)
      decoder.raw_scale.assign(moving_average)
  return rows


def main(argv):
  del argv
  steps = [int(s) for s in FLAGS.steps.split(",")]
  lines = ["| data | sigma | " + " | ".join(f"ELBO @{s}" for s in steps)
           + f" | sigma @{steps[-1]} | recon. RMSE @{steps[-1]} | run s |",
           "|---|---|" + "---|" * len(steps) + "---|---|---|"]
  for key, (name, source) in sources().items():
    if key not in FLAGS.datasets.split(","):
      continue
    for calibrated in (False, True):
      began = time.perf_counter()
      runs = curve(source, calibrated, steps)
      seconds = time.perf_counter() - began
      for label, rows in runs.items():
        lines.append(f"| {name} | {label} | " + " | ".join(f"{r[1]:.1f}" for r in rows)
                     + f" | {rows[-1][2]:.4f} | {rows[-1][3]:.4f} | {seconds:.0f} |")
        print(lines[-1], flush=True)
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
