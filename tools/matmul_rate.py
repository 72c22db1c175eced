"""tf.matmul GFLOP/s in float32 and bfloat16 at the shapes tfvae's MLP VAE multiplies.

  python tools/matmul_rate.py

The rate a processor's GEMM units give TensorFlow (oneDNN on x86: AVX-512, AVX512_BF16, AMX),
against which the Trainer's and the evaluator's throughput are read (docs/speed.md). Shapes
M x K x N: 2048^3, and a batch of 128 or 1024 through the 784 -> 512 layer (the IWAE
decoder's shapes are timed by tools/iwae_throughput.py). Prints one JSON line with lscpu's
model name. Timing lives here, never in a unit test.
"""

import json
import os
import time

import fixed_cost  # tools/ is sys.path[0]

SHAPES = [(2048, 2048, 2048), (128, 784, 512), (1024, 784, 512)]


def main():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rates = {}
  for m, k, n in SHAPES:
    for dtype in (tf.float32, tf.bfloat16):
      a = tf.cast(tf.random.normal([m, k]), dtype)
      b = tf.cast(tf.random.normal([k, n]), dtype)
      matmul = tf.function(tf.matmul)
      matmul(a, b).numpy()
      flops = 2 * m * k * n
      repeats = max(3, int(2e10 / flops))
      began = time.perf_counter()
      for _ in range(repeats):
        out = matmul(a, b)
      out.numpy()
      rates[f"{m}x{k}x{n} {dtype.name}"] = round(flops * repeats / (time.perf_counter() - began)
                                                 / 1e9, 1)
  print(json.dumps({"processor": fixed_cost.processor(), "gflops": rates}))


if __name__ == "__main__":
  main()
