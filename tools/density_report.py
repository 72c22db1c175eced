"""The density-estimation results of tfvae runs: a markdown table and the learning curves.

  python tools/density_report.py --runs=NAME=WORKDIR,... [--published=NAME=228.70,...]
      [--figure=docs/density_curves.png] [--steps_per_epoch=500]

Each run's row: the test NLL = -iwae_bound of the largest K in its eval.json (python -m
tfvae.evaluate --split=test --num_importance_samples=5000 writes test_K5000), the epochs it
trained, the epoch of its best checkpoint (WORKDIR/ckpt/best) and its validation -ELBO there. The
figure plots every run's validation -ELBO (TensorBoard eval/elbo) against the epoch.
"""

import json
import os

from absl import app
from absl import flags

from tfvae import summaries
from tfvae.training import early_stopping
from tfvae import workdir as workdir_lib

flags.DEFINE_list("runs", None, "NAME=WORKDIR pairs (NAME as it appears in the table).")
flags.DEFINE_list("published", [], "NAME=NLL pairs: the published test NLL of a row, nats.")
flags.DEFINE_string("figure", "", "Where to write the learning curves (PNG); empty: none.")
flags.DEFINE_integer("steps_per_epoch", 500, "Train steps per epoch (50000 images / batch 100).")
FLAGS = flags.FLAGS


def _pairs(values):
  return dict(v.split("=", 1) for v in values)


def _test_nll(workdir):
  """(nll, K, checkpoint step) of the test entry of eval.json with the largest K, or None."""
  entries = workdir_lib.read_eval_json(workdir)
  best = None
  for key, value in entries.items():
    if key.startswith("test_K") and isinstance(value, dict) and "nll" in value:
      k = value["num_importance_samples"]
      if best is None or k > best[1]:
        best = (value["nll"], k, value.get("checkpoint_step", value.get("step")))
  return best


def row(name, workdir, published):
  """One markdown row (str) and the run's curve (epochs, -elbo)."""
  steps, elbo = summaries.read_scalars(os.path.join(workdir, "tensorboard", "eval"),
                                       ["elbo"])["elbo"]
  epochs = steps / FLAGS.steps_per_epoch
  best = early_stopping.read_best(workdir)
  nll = _test_nll(workdir)
  cells = [name, published or "—",
           f"{nll[0]:.2f} (K = {nll[1]}, step {nll[2]})" if nll else "not evaluated",
           f"{epochs[-1]:.0f}",
           f"{best['step'] / FLAGS.steps_per_epoch:.0f}" if best else "—",
           f"{best['loss']:.2f}" if best else f"{(-elbo).min():.2f}"]
  return "| " + " | ".join(cells) + " |", (epochs, -elbo)


def main(argv):
  del argv
  published = _pairs(FLAGS.published)
  lines = ["| model | published test NLL | tfvae test NLL | epochs trained | best epoch | "
           "best validation -ELBO |", "|---|---|---|---|---|---|"]
  curves = {}
  for name, workdir in _pairs(FLAGS.runs).items():
    line, curves[name] = row(name, workdir, published.get(name))
    lines.append(line)
  print("\n".join(lines))
  if FLAGS.figure:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (epochs, loss) in curves.items():
      ax.plot(epochs, loss, label=name)
    for name, value in published.items():
      ax.axhline(float(value), ls=":", lw=0.8, color="gray")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation -ELBO (nats)")
    low = min([min(c[1]) for c in curves.values()] + [float(v) for v in published.values()])
    ax.set_ylim(low - 3, low + 25)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(FLAGS.figure, dpi=110)
    print(json.dumps({"figure": FLAGS.figure}))


if __name__ == "__main__":
  flags.mark_flag_as_required("runs")
  app.run(main)
