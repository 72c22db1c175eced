"""The MLP VAE as a PyTorch user writes it (eager), for tools/peer_benchmark.py.

  TORCH_PYTHON tools/peers/torch_vae.py --epochs=4 [--batch_size=128]

Same model, objective, data and output as tools/peers/jax_vae.py (see there): nn.Linear + ReLU
784-512-256 -> diagonal Gaussian (softplus + 1e-4) -> 256-512-784 Bernoulli logits, analytic
KL, torch.optim.Adam(1e-3), Glorot-uniform weights and zero biases, dynamic binarization,
torch.set_num_threads(cores). Runs in its own environment: never a dependency of tfvae.
"""

import time

_T0 = time.perf_counter()

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

import torch  # pylint: disable=g-import-not-at-top,wrong-import-position
from torch import nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch.nn.functional as F  # pylint: disable=g-import-not-at-top,wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx  # pylint: disable=g-import-not-at-top,wrong-import-position


def phase(name):
  print(f"PHASE {name} {time.perf_counter() - _T0:.3f}", flush=True)


def _mlp(sizes):
  layers = []
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    linear = nn.Linear(a, b)
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    layers += [linear] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
  return nn.Sequential(*layers)


class VAE(nn.Module):

  def __init__(self, hidden=(512, 256), latent_dim=32):
    super().__init__()
    self.latent_dim = latent_dim
    self.encoder = _mlp([784, *hidden, 2 * latent_dim])
    self.decoder = _mlp([latent_dim, *reversed(hidden), 784])

  def forward(self, x):
    loc, raw_scale = self.encoder(x).chunk(2, -1)
    scale = F.softplus(raw_scale) + 1e-4
    logits = self.decoder(loc + scale * torch.randn_like(loc))
    distortion = (F.softplus(logits) - x * logits).sum(-1)
    rate = (0.5 * (loc.square() + scale.square() - 1) - scale.log()).sum(-1)
    return distortion, rate


def main():
  parser = idx.arguments()
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  phase("imports")
  train_u8, test = idx.load(args.data_dir)
  train, test = torch.from_numpy(train_u8), torch.from_numpy(test)
  phase("data")
  torch.manual_seed(0)
  model = VAE()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  batch = args.batch_size
  steps = len(train) // batch
  phase("build")
  for epoch in range(args.epochs):
    order = torch.randperm(len(train))[:steps * batch].view(steps, batch)
    total = 0.0
    for rows in order:
      x = torch.bernoulli(train[rows].float() / 255)
      distortion, rate = model(x)
      loss = (distortion + rate).mean()
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      total += loss.item()
    phase(f"epoch{epoch + 1}")
  negative_elbo = 0.0
  with torch.no_grad():
    for i in range(0, len(test), 1000):
      distortion, rate = model(test[i:i + 1000])
      negative_elbo += float((distortion + rate).sum()) / len(test)
  phase("evaluate")
  print("RESULT " + json.dumps({"implementation": "torch_eager", "epochs": args.epochs,
                                "train_loss": total / steps, "test_elbo": -negative_elbo,
                                "torch": torch.__version__, "threads": torch.get_num_threads()}),
        flush=True)


if __name__ == "__main__":
  main()
