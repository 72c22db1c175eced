"""How pixels are binarized: what --binarization=auto picks for a Source (`auto_binarization`),
and the binarization once with fixed seeds of the splits that must not change between runs
(validation and test; train with static, and for M1's features: `fixed_train`)."""

import dataclasses

import numpy as np

# Fixed seeds for binarizing once, independent of --seed, so numbers compare across runs.
FIXED_BINARIZATION_SEED = {"train": 1, "validation": 2, "test": 3}


# --binarization=auto: a pixel is near black or white within this fraction of the range, and
# gray images whose pixels are near black or white more often than AUTO_MOSTLY are binary-like.
AUTO_NEAR = 0.1
AUTO_MOSTLY = 0.5
_CONTINUOUS_ADVICE = ("for continuous pixels use --likelihood=continuous_bernoulli or normal "
                      "(docs/data.md)")


def near_black_or_white(images, max_value):
  """The fraction (float in [0, 1]) of the pixels of uint8 images [N, H, W, C] in 0..max_value
  that lie within AUTO_NEAR of the range of black or white (y <= 0.1 max or y >= 0.9 max)."""
  low, high = np.floor(AUTO_NEAR * max_value), np.ceil((1 - AUTO_NEAR) * max_value)
  return float(np.mean((images <= low) | (images >= high))) if images.size else 0.0


def auto_binarization(source, likelihood):
  """What --binarization=auto picks for `source` under --likelihood=`likelihood`.

  dynamic for gray images (C = 1) whose pixels are mostly near black or white, under the
  Bernoulli likelihood (a distribution over {0, 1}); none otherwise: colour images (C = 3, 4),
  gray images with many mid-grays, a density likelihood (it models the gray levels), vectors.
  "Mostly": more than AUTO_MOSTLY (half) of the train split's pixels within AUTO_NEAR (a tenth
  of the range) of black or white. Measured (`near_black_or_white`, 2026-12-06): digits
  65%, Fashion-MNIST 60% (train split), the two scikit-learn sample photographs in gray 31% and
  14% (in RGB 36% and 35%; 16x16 gray patches of them 22%); the threshold lies in that gap.

  Args:
    source: tfvae.data.arrays.Source.
    likelihood: the run's --likelihood.

  Returns:
    (binarization, line): "dynamic" or "none", and the one log line that says what was picked,
    why, and what the user can set instead.
  """
  if source.kind == "vectors":
    return "none", (f"--binarization=auto: none (vectors [N, {source.train[0].shape[1]}]: "
                    "binarization is for pixels). Choose --likelihood by the features "
                    "(docs/data.md): normal or laplace for real values (with --standardize), "
                    "bernoulli for 0/1, poisson or negative_binomial for counts.")
  images = source.train[0]
  shape = "x".join(map(str, images.shape[1:]))
  if images.shape[-1] != 1:
    why = f"colour images {shape}"
  else:
    near = near_black_or_white(images, source.max_value)
    why = (f"gray images {shape}, {near:.0%} of pixels near black or white, "
           f"{'more' if near > AUTO_MOSTLY else 'not more'} than {AUTO_MOSTLY:.0%}")
    if near > AUTO_MOSTLY and likelihood == "bernoulli":
      return "dynamic", (f"--binarization=auto: dynamic ({why}: binary-like; each pixel is "
                         "resampled as 0/1 every step). Set --binarization=none to model the "
                         f"gray levels instead ({_CONTINUOUS_ADVICE}), or static.")
    if likelihood != "bernoulli":
      why += f"; --likelihood={likelihood} is a density on gray levels"
  advice = (f"; {_CONTINUOUS_ADVICE}: --likelihood=bernoulli on gray levels is a cross-entropy,"
            " not a log-likelihood" if likelihood == "bernoulli" else "")
  return "none", (f"--binarization=auto: none ({why}): pixels are gray levels in [0, 1]"
                  f"{advice}. Set --binarization=dynamic to binarize them instead.")


def binarize_once(split, max_value, seed):
  """`split` (a tfvae.data.Split of uint8 images in 0..max_value) with each pixel drawn once as 0
  or max_value, on with probability pixel / max_value, from a generator seeded with `seed`."""
  rng = np.random.default_rng(seed)
  probs = split.images.astype(np.float32) / max_value
  on = rng.random(probs.shape, dtype=np.float32) < probs
  return dataclasses.replace(split, images=(on * max_value).astype(np.uint8))


def fixed_train(data, config):
  """`data` with the train split binarized once with a fixed seed when binarization is dynamic,
  as validation and test are (for features computed on train images, e.g. M1)."""
  if data.binarization != "dynamic":
    return data
  return dataclasses.replace(data, train=binarize_once(data.train, data.max_value,
                                                       FIXED_BINARIZATION_SEED["train"]))
