"""The MLP VAE as a JAX + Flax user writes it, for tools/peer_benchmark.py.

  JAX_PYTHON tools/peers/jax_vae.py --epochs=4 [--loop=scan|step] [--batch_size=128]

Same model and objective as `python -m tfvae.train --hidden_sizes=512,256 --latent_dim=32`:
Dense + ReLU 784-512-256 encoder to a diagonal Gaussian q(z|x) (scale = softplus + 1e-4),
256-512-784 decoder to Bernoulli logits, analytic KL to N(0, I), Adam 1e-3 (optax), Glorot-
uniform weights and zero biases (Keras' defaults), pixels binarized afresh at every step
(dynamic binarization), 50000 Fashion-MNIST train images, 390 steps of 128 per epoch.

The data lives on the device; `--loop=scan` compiles one `jax.jit` call per epoch with
`lax.scan` over its steps (the permutation drawn inside), `--loop=step` one `jax.jit` call per
step. At the end the test ELBO (one sample, analytic KL, nats) on the 10000 test images
binarized once. Prints `PHASE name seconds` stamps (from process start) and one `RESULT {json}`.
Runs in its own environment (pip install jax flax optax numpy): never a dependency of tfvae.
"""

import time

_T0 = time.perf_counter()

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

import flax.linen as nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import optax  # pylint: disable=g-import-not-at-top,wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx  # pylint: disable=g-import-not-at-top,wrong-import-position


def phase(name):
  print(f"PHASE {name} {time.perf_counter() - _T0:.3f}", flush=True)


class VAE(nn.Module):
  hidden: tuple = (512, 256)
  latent_dim: int = 32

  @nn.compact
  def __call__(self, x, eps):
    init = nn.initializers.glorot_uniform()
    h = x
    for size in self.hidden:
      h = nn.relu(nn.Dense(size, kernel_init=init)(h))
    loc, raw_scale = jnp.split(nn.Dense(2 * self.latent_dim, kernel_init=init)(h), 2, -1)
    scale = jax.nn.softplus(raw_scale) + 1e-4
    h = loc + scale * eps
    for size in reversed(self.hidden):
      h = nn.relu(nn.Dense(size, kernel_init=init)(h))
    logits = nn.Dense(x.shape[-1], kernel_init=init)(h)
    distortion = jnp.sum(jax.nn.softplus(logits) - x * logits, -1)  # -log Bernoulli(x|logits)
    rate = jnp.sum(0.5 * (jnp.square(loc) + jnp.square(scale) - 1) - jnp.log(scale), -1)
    return distortion, rate


def main():
  parser = idx.arguments()
  parser.add_argument("--loop", choices=("scan", "step"), default="scan")
  args = parser.parse_args()
  phase("imports")
  train_u8, test = idx.load(args.data_dir)
  train = jax.device_put(train_u8)
  phase("data")

  model, batch = VAE(), args.batch_size
  steps = len(train_u8) // batch
  params = model.init(jax.random.PRNGKey(0), jnp.zeros([1, 784]), jnp.zeros([1, 32]))
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  def loss_fn(params, x, eps):
    distortion, rate = model.apply(params, x, eps)
    return jnp.mean(distortion + rate)

  def train_step(carry, rows_and_key):
    params, opt_state = carry
    rows, key = rows_and_key
    key_x, key_z = jax.random.split(key)
    x = jax.random.bernoulli(key_x, train[rows].astype(jnp.float32) / 255).astype(jnp.float32)
    eps = jax.random.normal(key_z, (rows.shape[0], 32))
    loss, grads = jax.value_and_grad(loss_fn)(params, x, eps)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def order(key):
    return jax.random.permutation(key, train.shape[0])[:steps * batch].reshape(steps, batch)

  @jax.jit
  def epoch_scan(params, opt_state, key):
    key_order, key_steps = jax.random.split(key)
    (params, opt_state), losses = jax.lax.scan(
        train_step, (params, opt_state), (order(key_order), jax.random.split(key_steps, steps)))
    return params, opt_state, jnp.mean(losses)

  jit_step = jax.jit(lambda params, opt_state, rows, key: train_step((params, opt_state),
                                                                      (rows, key)))
  jit_order = jax.jit(order)

  @jax.jit
  def test_sums(params, x, key):
    distortion, rate = model.apply(params, x, jax.random.normal(key, (x.shape[0], 32)))
    return jnp.sum(distortion + rate)

  phase("build")
  key = jax.random.PRNGKey(1)
  for epoch in range(args.epochs):
    key, key_epoch = jax.random.split(key)
    if args.loop == "scan":
      params, opt_state, loss = epoch_scan(params, opt_state, key_epoch)
    else:
      key_order, key_steps = jax.random.split(key_epoch)
      rows, keys = jit_order(key_order), jax.random.split(key_steps, steps)
      losses = []
      for i in range(steps):
        (params, opt_state), step_loss = jit_step(params, opt_state, rows[i], keys[i])
        losses.append(step_loss)
      loss = jnp.mean(jnp.stack(losses))
    loss = float(loss)  # waits for the epoch
    phase(f"epoch{epoch + 1}")
  negative_elbo = sum(float(test_sums(params, test[i:i + 1000], jax.random.PRNGKey(i)))
                      for i in range(0, len(test), 1000)) / len(test)
  phase("evaluate")
  print("RESULT " + json.dumps({"implementation": f"jax_{args.loop}", "epochs": args.epochs,
                                "train_loss": loss, "test_elbo": -negative_elbo,
                                "jax": jax.__version__, "devices": str(jax.devices())}),
        flush=True)


if __name__ == "__main__":
  main()
