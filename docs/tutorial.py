"""Tutorial: a VAE on your own images and on a table, from Python.

    python docs/tutorial.py [WORKDIR] [--train_steps=N]

Runs offline on data that ships with scikit-learn: the 8x8 digits written out as a folder of
PNG files (one subfolder per class, as your own images would be), and the breast cancer table
(569 patients x 30 features) as numpy arrays. The test suite runs this file
(tests/test_docs.py), so every line below works. Each step prints what it got.
"""

import os
import sys
import tempfile

import numpy as np
from PIL import Image
from sklearn import datasets

import tfvae


def write_image_folder(root):
  """Your own images: ROOT/<class>/<name>.png. Here, scikit-learn's digits as 8-bit PNGs."""
  digits = datasets.load_digits()
  for i, (image, label) in enumerate(zip(digits.images, digits.target)):
    folder = os.path.join(root, f"digit_{label}")
    os.makedirs(folder, exist_ok=True)
    Image.fromarray((image * 255 / 16).round().astype(np.uint8)).save(
        os.path.join(folder, f"{i:04d}.png"))
  return root


def images(workdir, train_steps):
  """Part 1: images from a folder -> train -> load -> ask the model."""
  folder = write_image_folder(os.path.join(workdir, "my_images"))
  # Class subfolders give labels; a flat folder is unlabeled. `image_size=(H, W)` resizes images
  # of different sizes. No test/ subfolder here, so 20% is held out as the test split.
  data = tfvae.data.from_directory(folder)
  print("data:", data.train[0].shape, data.class_names[:3], "...")

  config = tfvae.Config(latent_dim=8, hidden_sizes=(128, 64), train_steps=train_steps,
                        eval_every=max(1, train_steps // 2))
  run = os.path.join(workdir, "digits_vae")
  model = tfvae.fit(config, run, data=data)  # logs and a progress display, as the CLI
  results = model.results  # the final metrics, also merged into RUN/eval.json
  print(f"test elbo {results['test']['elbo']:.2f} nats after {results['step']} steps")

  # The run folder is the same one `python -m tfvae.train --dataset=FOLDER` writes: every
  # command (evaluate, visualize, export, resume) works on it, and so does tfvae.load (the same
  # model, e.g. in a later session).
  model = tfvae.load(run)
  test = model.data().test  # the folder is read again and checked against the run's data
  x = test.images[:5]  # uint8 pixels: the model scales them as in training
  q_z = model.encode(x)  # tfd.MultivariateNormalDiag, batch [5], event [8]
  print("posterior means:", np.round(q_z.mean().numpy()[0], 2))
  print("elbo per image:", np.round(model.elbo(x), 1))
  print("iwae bound (K=100):", np.round(model.iwae_bound(x, num_importance_samples=100), 1))
  print("samples:", model.sample(4, seed=0)["mean"].shape)
  metrics = model.evaluate(split="test", num_importance_samples=50)  # also into eval.json
  print(f"test nll {metrics['nll']:.2f} nats (K=50), {metrics['active_units']} active units")
  print("SavedModel:", model.export())


def table(workdir, train_steps):
  """Part 2: a table of real-valued features -> a VAE with a Normal likelihood per feature."""
  cancer = datasets.load_breast_cancer()
  data = tfvae.data.from_arrays(cancer.data, cancer.target)  # float [569, 30] -> vectors
  config = tfvae.Config(binarization="none", likelihood="normal", standardize=True,
                        latent_dim=4, hidden_sizes=(64, 32), batch_size=64,
                        train_steps=train_steps, eval_every=max(1, train_steps // 2))
  run = os.path.join(workdir, "cancer_vae")
  model = tfvae.fit(config, run, data=data)  # the trained model (tfvae.load(run) rebuilds it)
  # Raw features in, raw units out: the run's standardization is applied inside.
  reconstruction = model.reconstruct(cancer.data[:3])
  print("feature 0, raw and reconstructed:", cancer.data[:3, 0], np.round(reconstruction[:, 0], 2))
  # A run trained on arrays needs the same arrays for evaluation (no command can read them).
  metrics = model.evaluate(data, split="test", num_importance_samples=50)
  print(f"test elbo {metrics['elbo']:.2f}, iwae bound {metrics['iwae_bound']:.2f} nats "
        "(standardized features)")


def main(argv):
  workdir = next((a for a in argv if not a.startswith("--")), None) or tempfile.mkdtemp()
  steps = next((int(a.split("=")[1]) for a in argv if a.startswith("--train_steps=")), 2000)
  images(workdir, steps)
  table(workdir, steps)
  print("outputs in", workdir)


if __name__ == "__main__":
  main(sys.argv[1:])
