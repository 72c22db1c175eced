"""Trains the model family on one dataset with one architecture and budget, and prints the table.

  python tools/compare_models.py --dataset=fashion_mnist --epochs=10 \
      --workdir=/tmp/tfvae/compare_fashion_mnist [--output=compare.md]

Rows (same networks, optimizer, batch, epochs and seed; Bernoulli likelihood on dynamically
binarized pixels): ae, sparse_ae, denoising_ae, contractive_ae, vae (beta = 1), beta-VAE
(beta = 4), VAE with linear KL warm-up. Columns: test squared error (sum over pixels of
(x - E[x | mean code])^2), test distortion (-log p(x | z), nats), test ELBO and NLL (IWAE bound
with --num_importance_samples) where a model defines them, active units, train wall time.

Density rows (bits/dim of uniformly dequantized pixels, lower is better): a VAE with a
normal_per_pixel likelihood trained on dequantized pixels (same networks and budget) against
`tfvae.gmm`'s Gaussian mixture, both scored on the same dequantized test pixels.

Each run lives in WORKDIR/NAME; re-running skips finished runs (their eval.json is read back) and
resumes unfinished ones from their checkpoints.
"""

import json
import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("workdir", "/tmp/tfvae/compare", "Root folder; one subfolder per row.")
flags.DEFINE_string("dataset", "fashion_mnist", "As tfvae.train's --dataset.")
flags.DEFINE_string("data_dir", "", "As tfvae.train's --data_dir.")
flags.DEFINE_enum("architecture", "mlp", ["mlp", "conv"], "Networks of every row.")
flags.DEFINE_list("hidden_sizes", ["300", "300"], "MLP widths of every row.")
flags.DEFINE_list("conv_filters", ["32", "64"], "Conv filters of every row.")
flags.DEFINE_integer("latent_dim", 16, "Code / latent dimension of every row.")
flags.DEFINE_integer("epochs", 10, "Training epochs of every row.")
flags.DEFINE_integer("batch_size", 128, "Batch size of every row.")
flags.DEFINE_float("warmup_epochs", 5, "Linear KL warm-up length of the warm-up row, epochs.")
flags.DEFINE_integer("num_importance_samples", 100, "K of the test NLL (IWAE bound).")
flags.DEFINE_integer("gmm_components", 10, "Components of the Gaussian mixture.")
flags.DEFINE_integer("gmm_max_train_examples", 10000,
                     "Fit the mixture on N train examples (0: all; all 50000 Fashion-MNIST images "
                     "with full covariances did not finish in 60 min on 2 cores).")
flags.DEFINE_float("gmm_reg_covar", 1e-3, "sklearn reg_covar of the mixture (1e-6 overfits: "
                   "8.89 bits/dim on Fashion-MNIST test, worse than uniform).")
flags.DEFINE_list("rows", [], "Only these rows, by key (see ROWS; vae_dequantized, gmm); "
                  "empty: all.")
flags.DEFINE_string("output", "", "Also write the markdown table to this file.")
FLAGS = flags.FLAGS

# key (--rows, subfolder) -> (label in the table, Config overrides)
ROWS = {
    "ae": ("AE", dict(model="ae")),
    "sparse_ae": ("sparse AE (lambda=0.01)", dict(model="sparse_ae", sparsity_weight=0.01)),
    "denoising_ae": ("denoising AE (masking, nu=0.25)",
                     dict(model="denoising_ae", corruption="masking", corruption_level=0.25)),
    "contractive_ae": ("contractive AE (lambda=0.1)",
                       dict(model="contractive_ae", contraction_weight=0.1)),
    "vae": ("VAE (beta=1)", dict(model="vae")),
    "beta_vae": ("beta-VAE (beta=4)", dict(model="vae", beta=4.0)),
    "vae_warmup": ("VAE + linear KL warm-up", dict(model="vae", beta_schedule="linear")),
}
DENSITY_ROWS = ("vae_dequantized", "gmm")


def _train(name, overrides, base):
  """Trains (or resumes, or reads back) one row; returns its eval.json plus wall time."""
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import api  # pylint: disable=import-outside-toplevel
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  workdir = os.path.join(FLAGS.workdir, name)
  config = config_lib.Config.from_dict({**base, **overrides})
  done = os.path.join(workdir, "compare.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  began = time.perf_counter()
  results = run.train_and_evaluate(config, workdir)
  wall = time.perf_counter() - began
  test = results["test"]
  if config.family == "vae" and FLAGS.num_importance_samples:
    test = api.load(workdir).evaluate(split="test",
                                      num_importance_samples=FLAGS.num_importance_samples)
  row = {"name": name, "workdir": workdir, "step": results["step"], "train_wall_s": round(wall),
         "test": test}
  with open(done + ".tmp", "w") as f:
    json.dump(row, f, indent=2)
  os.replace(done + ".tmp", done)
  return row


def _fmt(value, digits=2):
  return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv):
  del argv
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import gmm as gmm_lib  # pylint: disable=import-outside-toplevel

  base = dict(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, architecture=FLAGS.architecture,
              hidden_sizes=[int(h) for h in FLAGS.hidden_sizes],
              conv_filters=[int(f) for f in FLAGS.conv_filters], latent_dim=FLAGS.latent_dim,
              likelihood="bernoulli", binarization="dynamic", batch_size=FLAGS.batch_size,
              epochs=FLAGS.epochs, steps_per_loop=100, eval_importance_samples=0,
              checkpoint_every=2000)
  base_config = config_lib.Config.from_dict(base)
  data = data_lib.load(base_config)
  per_epoch = data_lib.steps_per_epoch(data, base_config)
  base["eval_every"] = per_epoch * FLAGS.epochs  # validation once, at the end
  rows = dict(ROWS)
  rows["vae_warmup"] = (rows["vae_warmup"][0],
                        dict(model="vae", beta_schedule="linear",
                             warmup_steps=int(FLAGS.warmup_epochs * per_epoch)))
  selected = FLAGS.rows or list(rows) + list(DENSITY_ROWS)
  unknown = sorted(set(selected) - set(rows) - set(DENSITY_ROWS))
  if unknown:
    raise app.UsageError(f"--rows={','.join(unknown)}: unknown; choose from "
                         f"{', '.join(list(rows) + list(DENSITY_ROWS))}.")

  lines = [f"Test split of {FLAGS.dataset}, {FLAGS.architecture} "
           f"{'-'.join(FLAGS.hidden_sizes if FLAGS.architecture == 'mlp' else FLAGS.conv_filters)}"
           f", latent_dim {FLAGS.latent_dim}, {FLAGS.epochs} epochs at batch {FLAGS.batch_size}, "
           f"NLL with K={FLAGS.num_importance_samples}. Bernoulli likelihood, dynamic "
           "binarization.", "",
           "| model | squared error | distortion (nats) | ELBO (nats) | NLL (nats) | "
           "active units | train time (s) |", "|---|---|---|---|---|---|---|"]
  for name, (label, overrides) in rows.items():
    if name not in selected:
      continue
    row = _train(name, overrides, base)
    t = row["test"]
    lines.append(f"| {label} | {_fmt(t['squared_error'])} | {_fmt(t['distortion'])} | "
                 f"{_fmt(t.get('elbo'))} | {_fmt(t.get('nll'))} | {t['active_units']} | "
                 f"{row['train_wall_s']} |")
    print(lines[-1], flush=True)

  density = ["", "Density on uniformly dequantized pixels (same test pixels; bits/dim, lower is "
             "better):", "", "| model | test NLL (nats) | bits/dim | fit/train time (s) |",
             "|---|---|---|---|"]
  if "vae_dequantized" in selected:
    row = _train("vae_dequantized", dict(model="vae", likelihood="normal_per_pixel",
                                         binarization="dequantize"), base)
    t = row["test"]
    density.append(f"| VAE, normal_per_pixel likelihood | {_fmt(t.get('nll'))} | "
                   f"{_fmt(t['bits_per_dim'], 3)} | {row['train_wall_s']} |")
    print(density[-1], flush=True)
  if "gmm" in selected:
    path = os.path.join(FLAGS.workdir, "gmm", "gmm.json")
    if os.path.exists(path):
      with open(path) as f:
        metrics = json.load(f)
    else:
      _, metrics, _ = gmm_lib.fit_and_evaluate(
          config_lib.Config.from_dict(base), FLAGS.gmm_components, "full",
          reg_covar=FLAGS.gmm_reg_covar, max_train_examples=FLAGS.gmm_max_train_examples)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w") as f:
        json.dump(metrics, f, indent=2)
    density.append(f"| GMM, {metrics['num_components']} full-covariance components, reg_covar "
                   f"{metrics.get('reg_covar', FLAGS.gmm_reg_covar)} "
                   f"({metrics['num_train_examples']} train examples) | {_fmt(metrics['nll'])} | "
                   f"{_fmt(metrics['bits_per_dim'], 3)} | {metrics['fit_seconds']} |")
    print(density[-1], flush=True)
  table = "\n".join(lines + density)
  print(table)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  app.run(main)
