"""Sample quality of trained runs with each sampler: standard (the prior), gmm, two_stage.

  python tools/sampler_table.py --workdirs=runs/vae,runs/beta_vae,runs/ae [--num_samples=10000]
      [--num_components=10] [--output=table.md]

For each run: sample_quality with the prior (models that have one), then fit_sampler("gmm")
and sample_quality, then fit_sampler("two_stage") and sample_quality, all on the test split with
the domain classifier (docs/sample_quality.md); the run keeps the last sampler fitted. Prints a
markdown table (Fréchet distance, precision, recall, and the real-data floor) and the seconds
each fit took. The question it answers: does a density fitted to the codes (Ghosh et al. 2020,
Dai & Wipf 2019) give better samples than the prior? Timing lives here, never in a test.
"""

import time

from absl import app
from absl import flags

flags.DEFINE_list("workdirs", [], "Trained runs (their samplers are refitted).")
flags.DEFINE_integer("num_samples", 10000, "Samples per measurement.")
flags.DEFINE_integer("num_components", 10, "Components of the gmm sampler.")
flags.DEFINE_string("output", "", "Also write the table here.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import tfvae  # pylint: disable=import-outside-toplevel
  from tfvae.models import interface  # pylint: disable=import-outside-toplevel
  rows = ["| run | family | sampler | Fréchet distance | precision | recall | fit s |",
          "|---|---|---|---|---|---|---|"]
  floor = None
  for workdir in FLAGS.workdirs:
    model = tfvae.load(workdir)
    kinds = ["gmm", "two_stage"]
    if isinstance(model.model, interface.LatentVariableModel):
      kinds.insert(0, "standard")
    for kind in kinds:
      began = time.perf_counter()
      if kind == "standard":
        model.fit_sampler("standard")
      else:
        model.fit_sampler(kind, **({"num_components": FLAGS.num_components}
                                   if kind == "gmm" else {}))
      fit_s = time.perf_counter() - began
      result = model.sample_quality(num_samples=FLAGS.num_samples, sampler=kind)
      floor = result
      rows.append(f"| {workdir} | {model.config.family} | {kind} | "
                  f"{result['frechet_distance']:.2f} | {result['precision']:.3f} | "
                  f"{result['recall']:.3f} | {fit_s:.0f} |")
      print(rows[-1], flush=True)
  if floor is not None:
    rows.append(f"| real {floor['reference_split']} examples (the floor) | | | "
                f"{floor['reference_frechet_distance']:.2f} | "
                f"{floor['reference_precision']:.3f} | {floor['reference_recall']:.3f} | |")
    rows.append("")
    rows.append(f"Domain classifier test accuracy {floor['classifier_test_accuracy']:.4f} "
                f"({floor['classifier']}).")
  print("\n".join(rows))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
  app.run(main)
