"""Importance-weighted bound throughput (examples x K per second) against the float32 GEMM rate.

  python tools/iwae_throughput.py --data_dir=D [--num_examples=200]
      [--num_importance_samples=5000] [--batch_size=100] [--chunk_size=500]

Builds the model `python -m tfvae.train` builds for the MLP VAE 784-512-256-32 on Fashion-MNIST
(untrained: the cost does not depend on the weights) and times, in this process:
- evaluate_s: tfvae's Evaluator (the code `python -m tfvae.evaluate` runs) over the first
  --num_examples test images at K = --num_importance_samples, after one untimed call on one
  batch (tracing);
- decoder_s: the same number of decoder passes and Bernoulli log-densities on fixed noise, one
  chunk [chunk_size * batch_size, 32] at a time (what the bound cannot avoid);
- gemm: tf.matmul float32 GFLOP/s at the decoder's three shapes for one chunk, and the bound
  they set: examples x K per second = GEMM FLOP/s / the decoder's FLOPs per sample
  (2 x (32*256 + 256*512 + 512*784) multiply-adds).
Prints one JSON line with lscpu's model name. Timing lives here, never in a unit test.
"""

import dataclasses
import json
import os
import time

from absl import app
from absl import flags

import fixed_cost  # tools/ is sys.path[0]

flags.DEFINE_string("data_dir", "", "TFDS data_dir holding fashion_mnist.")
flags.DEFINE_integer("num_examples", 200, "Test images evaluated.", lower_bound=1)
flags.DEFINE_integer("num_importance_samples", 5000, "K.", lower_bound=1)
flags.DEFINE_integer("batch_size", 100, "Evaluation batch size.", lower_bound=1)
flags.DEFINE_integer("chunk_size", 500, "Importance samples per chunk.", lower_bound=10)
FLAGS = flags.FLAGS

HIDDEN, LATENT, PIXELS = (512, 256), 32, 784
# The decoder's layer widths, and the FLOPs of its matmuls per importance sample.
WIDTHS = [LATENT, *reversed(HIDDEN), PIXELS]
FLOPS_PER_SAMPLE = 2 * sum(a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))


def _gemm_gflops(tf, rows):
  """float32 tf.matmul GFLOP/s of one decoder pass over `rows` samples (its three GEMMs)."""
  inputs = [tf.random.normal([rows, w]) for w in WIDTHS[:-1]]
  weights = [tf.random.normal([a, b]) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
  gemms = tf.function(lambda: [tf.matmul(a, w) for a, w in zip(inputs, weights)])
  [g.numpy() for g in gemms()]  # pylint: disable=expression-not-assigned
  flops = rows * FLOPS_PER_SAMPLE
  repeats = max(3, int(3e10 / flops))
  began = time.perf_counter()
  for _ in range(repeats):
    out = gemms()
  out[-1].numpy()
  return flops * repeats / (time.perf_counter() - began) / 1e9


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import evaluator as evaluator_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(dataset="fashion_mnist", data_dir=FLAGS.data_dir,
                             hidden_sizes=HIDDEN, latent_dim=LATENT)
  data = data_lib.load(config)
  config = config.replace(image_shape=data.image_shape)
  trainer = trainer_lib.Trainer(config, distribute.make_strategy(config))
  model, k, n = trainer.model, FLAGS.num_importance_samples, FLAGS.num_examples
  evaluator = evaluator_lib.Evaluator(model, trainer.strategy, k, FLAGS.chunk_size)
  dataset = data_lib.eval_dataset(data, "test", FLAGS.batch_size)
  began = time.perf_counter()
  evaluator(dataset.take(1))
  first_s = time.perf_counter() - began
  began = time.perf_counter()
  metrics = evaluator(dataset.unbatch().take(n).batch(FLAGS.batch_size))
  evaluate_s = time.perf_counter() - began

  x = next(iter(dataset))["image"]
  q_z = model.posterior(x)
  eps = tf.random.normal([FLAGS.chunk_size, FLAGS.batch_size, model.noise_dim])
  chunk = tf.function(lambda: tf.reduce_sum(model.log_weight_terms(x, q_z, eps)["log_likelihood"]),
                      autograph=False)
  chunk().numpy()
  num_chunks = -(-n // FLAGS.batch_size) * -(-k // FLAGS.chunk_size)
  began = time.perf_counter()
  for _ in range(num_chunks):
    out = chunk()
  out.numpy()
  decoder_s = time.perf_counter() - began

  gflops = _gemm_gflops(tf, FLAGS.chunk_size * FLAGS.batch_size)
  bound = gflops * 1e9 / FLOPS_PER_SAMPLE
  rate = n * k / evaluate_s
  print(json.dumps({
      "processor": fixed_cost.processor(), "num_examples": n, "num_importance_samples": k,
      "batch_size": FLAGS.batch_size, "chunk_size": FLAGS.chunk_size,
      "first_call_s": round(first_s, 2), "evaluate_s": round(evaluate_s, 2),
      "examples_k_per_s": round(rate), "decoder_s": round(decoder_s, 2),
      "decoder_examples_k_per_s": round(n * k / decoder_s),
      "gemm_gflops_f32": round(gflops, 1), "gemm_bound_examples_k_per_s": round(bound),
      "bound_over_measured": round(bound / rate, 2), "iwae_bound": round(metrics["iwae_bound"], 3),
      "images_10000_at_this_rate_s": round(10000 * k / rate)}))


if __name__ == "__main__":
  app.run(main)
