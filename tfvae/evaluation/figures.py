"""The pictures people look at, as matplotlib figures. Each function returns a Figure.

Inputs are numpy arrays: images float32 [N, H, W, C] in [0, 1], posterior means [N, D], labels
int [N]. `model` is a tfvae model (encoder, decoder, prior()); `title` names model, dataset, step.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from scipy import stats  # pylint: disable=g-import-not-at-top,wrong-import-position
from sklearn import decomposition  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfvae import summaries  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfvae.models import interface

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.titlesize": 13})


def _decode_mean(model, z):
  return np.asarray(model.decode(np.asarray(z, np.float32)).mean())


def _show_grid(ax, images, columns, label=None):
  grid = summaries.image_grid(images, columns)[0]
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  if label:
    ax.set_ylabel(label)


def reconstructions(model, images, title, columns=10, labels=None, conditions=None):
  """Inputs (odd rows) above their reconstructions (`model.reconstruct`: the decoder mean at
  the posterior mean; M2's at the predicted class; a Conditional model's (cvae) given the
  images' classes `labels` int [N], or their real `conditions` float32 [N, C] for a cvae on
  conditions, which it needs)."""
  if isinstance(model, interface.Conditional):
    if labels is None and conditions is None:
      raise ValueError(f"--model={model.config.family} reconstructs given the condition: pass "
                       "labels (or conditions).")
    c = model.condition(summaries.given(labels, conditions))
    recon = np.asarray(model.reconstruct(images, c))
  else:
    recon = np.asarray(model.reconstruct(images))
  n = len(images) // columns * columns
  rows = []
  for start in range(0, n, columns):
    rows += [images[start:start + columns], recon[start:start + columns]]
  fig, ax = plt.subplots(figsize=(columns * 0.9, len(rows) * 0.9 + 0.8))
  _show_grid(ax, np.concatenate(rows), columns, "input / reconstruction (alternating rows)")
  fig.suptitle(f"Reconstructions - {title}")
  return fig


def samples(model, num, seed, title, columns=10, drawn=None, sampler=None, given=""):
  """Draws of `model.sample(num, seed)` (the exported `sample` signature's): the decoder mean,
  and (Bernoulli) the sampled pixels, drawn with their own half of the split seed.

  `drawn`: instead, the dict TrainedModel.sample returned ({"mean", "sample"} [num, H, W, C]);
  `sampler`: the tfvae.samplers.Sampler it drew z from (named on the figure; None or the
  standard one: the prior); `given`: for draws z ~ p(z|c) of a cvae on conditions, which
  conditions c they were given (named on the figure)."""
  drawn = model.sample(num, seed) if drawn is None else drawn
  prior = sampler is None or sampler.kind == "standard"
  panels = [("mean of p(x|z)", np.asarray(drawn["mean"]))]
  if model.config.model.likelihood == "bernoulli":
    panels.append(("sampled pixels x ~ p(x|z)", np.asarray(drawn["sample"])))
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6.5), squeeze=False)
  for ax, (name, images) in zip(axes[0], panels):
    _show_grid(ax, images, columns)
    ax.set_title(name)
    ax.set_xlabel(f"{num} samples z ~ " + (f"p(z|c), c {given}" if given else "p(z) = N(0, I)"
                                            if prior else sampler.description))
  kind = ("Samples given conditions" if given else "Prior samples" if prior
          else f"Samples ({sampler.kind} sampler)")
  fig.suptitle(f"{kind} - {title}")
  return fig


def class_samples(model, num_per_class, seed, title, class_names=()):
  """One row per class k of `num_per_class` draws of `model.sample(n, seed, label=k)` (a
  LabelConditional model: m2, cvae): the decoder means, the same seed for every row (for a
  prior that does not depend on the class, the same z in every column).

  Args:
    model: a LabelConditional tfvae model.
    num_per_class: int, images per row.
    seed: int32 Tensor [2].
    title: names model, dataset, step.
    class_names: names of the K classes (rows are labelled with them, else with k).
  """
  rows = [np.asarray(model.sample(num_per_class, seed, label=k)["mean"])
          for k in range(model.num_classes)]
  fig, ax = plt.subplots(figsize=(num_per_class * 0.9 + 1.5, len(rows) * 0.9 + 1))
  _show_grid(ax, np.concatenate(rows), num_per_class)
  h = rows[0].shape[1] + summaries.GRID_PADDING
  ax.set_yticks(np.arange(len(rows)) * h + rows[0].shape[1] / 2)
  ax.set_yticklabels([_class_name(class_names, k) for k in range(len(rows))])
  ax.set_ylabel("class given")
  ax.set_xlabel(f"{num_per_class} draws per class (decoder mean)")
  fig.suptitle(f"Samples per class - {title}")
  return fig


def slerp(z_a, z_b, t):
  """Great-circle interpolation between vectors z_a, z_b [D] at fractions t [T] -> [T, D]."""
  cos = np.dot(z_a, z_b) / (np.linalg.norm(z_a) * np.linalg.norm(z_b))
  omega = np.arccos(np.clip(cos, -1, 1))
  if omega < 1e-6:
    return np.outer(1 - t, z_a) + np.outer(t, z_b)
  return (np.outer(np.sin((1 - t) * omega), z_a) + np.outer(np.sin(t * omega), z_b)) / np.sin(omega)


def interpolation(model, pairs, title, steps=10):
  """For each (x_a, x_b): decoded points on the line and on the great circle between their
  posterior means; the end images are the inputs."""
  t = np.linspace(0, 1, steps)
  rows = []
  for x_a, x_b in pairs:
    z_a, z_b = np.asarray(model.encoder(np.stack([x_a, x_b])).mean())
    for path in (np.outer(1 - t, z_a) + np.outer(t, z_b), slerp(z_a, z_b, t)):
      rows.append(np.concatenate([x_a[None], _decode_mean(model, path), x_b[None]]))
  fig, ax = plt.subplots(figsize=((steps + 2) * 0.9, len(rows) * 0.9 + 1))
  _show_grid(ax, np.concatenate(rows), steps + 2,
             "per pair: linear (upper), great circle (lower)")
  ax.set_xlabel("input A | decoded path from mean of q(z|A) to mean of q(z|B) | input B")
  fig.suptitle(f"Latent interpolation - {title}")
  return fig


def traversals(model, x, rate_per_dimension, title, num_dims=8, values=np.linspace(-3, 3, 9),
               center=None, scale=None, score_label="{:.2f} nats"):
  """Each row varies one latent dimension (highest score first) of x's posterior mean.

  Dimension d takes the values center[d] + values * scale[d] (default center 0, scale 1: the
  prior's standard deviations). Deterministic AEs pass their codes' mean and std, and their
  codes' variance as `rate_per_dimension` with score_label "var {:.2f}".
  """
  z = np.asarray(model.encoder(x[None]).mean())[0]
  dims = np.argsort(rate_per_dimension)[::-1][:num_dims]
  center = np.zeros_like(z) if center is None else center
  scale = np.ones_like(z) if scale is None else scale
  rows = []
  for d in dims:
    codes = np.repeat(z[None], len(values), axis=0)
    codes[:, d] = center[d] + values * scale[d]
    rows.append(_decode_mean(model, codes))
  fig, ax = plt.subplots(figsize=(len(values) * 0.9 + 1.5, len(dims) * 0.9 + 1))
  _show_grid(ax, np.concatenate(rows), len(values))
  h, w = x.shape[0] + summaries.GRID_PADDING, x.shape[1] + summaries.GRID_PADDING
  ax.set_yticks(np.arange(len(dims)) * h + x.shape[0] / 2)
  ax.set_yticklabels([f"z{d} ({score_label.format(rate_per_dimension[d])})" for d in dims])
  ax.set_xticks(np.arange(len(values)) * w + x.shape[1] / 2)
  ax.set_xticklabels([f"{v:+.1f}" for v in values])
  unit = "prior std" if scale is None or np.all(scale == 1) else "std of the codes"
  ax.set_xlabel(f"value of the varied dimension, in {unit} (others at the posterior mean)")
  ax.set_ylabel("dimension (score)")
  fig.suptitle(f"Latent traversals - {title}")
  return fig


def manifold(model, means, title, size=15):
  """Decoded grid over the prior's quantiles (latent_dim = 2: Kingma & Welling 2014, fig. 4), or
  over the first two principal directions of the posterior means (their std as the unit).

  A deterministic AE (no prior) with latent_dim = 2 gets a grid over its codes' range (1st to
  99th percentile per axis), with the codes drawn as dots: decodings between the clusters show
  the gaps of an unregularized code space.
  """
  q = stats.norm.ppf(np.linspace(0.05, 0.95, size))
  a, b = np.meshgrid(q, q[::-1])
  if means.shape[1] == 2 and not isinstance(model, interface.LatentVariableModel):
    return _code_range_manifold(model, means, title, size)
  if means.shape[1] == 2:
    codes = np.stack([a.ravel(), b.ravel()], axis=1)
    axes_label = ("z0 (prior quantiles)", "z1 (prior quantiles)")
  else:
    pca = decomposition.PCA(2).fit(means)
    std = np.sqrt(pca.explained_variance_)
    codes = (pca.mean_ + np.outer(a.ravel() * std[0], pca.components_[0])
             + np.outer(b.ravel() * std[1], pca.components_[1]))
    axes_label = ("1st principal direction of E[z|x] (std units)",
                  "2nd principal direction (std units)")
  fig, ax = plt.subplots(figsize=(9, 9.5))
  _show_grid(ax, _decode_mean(model, codes), size)
  h, w = model.config.data.image_shape[:2]
  ticks = np.arange(0, size, 2)
  pad = summaries.GRID_PADDING
  ax.set_xticks(ticks * (w + pad) + w / 2)
  ax.set_xticklabels([f"{v:.1f}" for v in q[ticks]])
  ax.set_yticks(ticks * (h + pad) + h / 2)
  ax.set_yticklabels([f"{v:.1f}" for v in q[::-1][ticks]])
  ax.set_xlabel(axes_label[0])
  ax.set_ylabel(axes_label[1])
  fig.suptitle(f"Learned manifold - {title}")
  return fig


def _code_range_manifold(model, means, title, size):
  low, high = np.percentile(means, 1, axis=0), np.percentile(means, 99, axis=0)
  u, v = np.linspace(low[0], high[0], size), np.linspace(high[1], low[1], size)
  a, b = np.meshgrid(u, v)
  fig, (ax, ax_codes) = plt.subplots(1, 2, figsize=(17, 8.5))
  _show_grid(ax, _decode_mean(model, np.stack([a.ravel(), b.ravel()], axis=1)), size)
  h, w = model.config.data.image_shape[:2]
  ticks = np.arange(0, size, 2)
  pad = summaries.GRID_PADDING
  ax.set_xticks(ticks * (w + pad) + w / 2)
  ax.set_xticklabels([f"{t:.1f}" for t in u[ticks]])
  ax.set_yticks(ticks * (h + pad) + h / 2)
  ax.set_yticklabels([f"{t:.1f}" for t in v[ticks]])
  ax.set_xlabel("h0 (1st-99th percentile of the codes)")
  ax.set_ylabel("h1")
  ax_codes.scatter(means[:, 0], means[:, 1], s=2, alpha=0.4, color="k")
  ax_codes.set_xlim(low[0], high[0])
  ax_codes.set_ylim(low[1], high[1])
  ax_codes.set_xlabel("h0")
  ax_codes.set_ylabel("h1")
  ax_codes.set_title("codes of the data (empty regions decode to no image of the data)")
  fig.suptitle(f"Decoded code space - {title}")
  return fig


def _class_name(class_names, label):
  return class_names[label] if 0 <= label < len(class_names) else str(label)


def latent_pca(means, labels, class_names, title):
  """Posterior means projected to 2-D by PCA (scikit-learn), colored by class."""
  pca = decomposition.PCA(2).fit(means)
  points = pca.transform(means)
  fig, ax = plt.subplots(figsize=(9, 7.5))
  for label in np.unique(labels):
    keep = labels == label
    ax.scatter(points[keep, 0], points[keep, 1], s=6, alpha=0.6,
               label=_class_name(class_names, label), color=plt.cm.tab10(label % 10))
  ratio = pca.explained_variance_ratio_
  ax.set_xlabel(f"PC 1 of E[z|x] ({ratio[0]:.0%} of variance)")
  ax.set_ylabel(f"PC 2 ({ratio[1]:.0%} of variance)")
  ax.legend(markerscale=3, fontsize=9, loc="best")
  fig.suptitle(f"Posterior means, PCA - {title}")
  return fig


def histograms(means, labels, class_names, rate_per_dimension, title, num_dims=4,
               score_label="KL {:.2f} nats"):
  """Stacked per-class histograms of the posterior means of the highest-score (KL) dimensions."""
  dims = np.argsort(rate_per_dimension)[::-1][:num_dims]
  classes = np.unique(labels)
  fig, axes = plt.subplots(1, len(dims), figsize=(4.5 * len(dims), 4.5), squeeze=False)
  for ax, d in zip(axes[0], dims):
    ax.hist([means[labels == c, d] for c in classes], bins=40, stacked=True,
            color=[plt.cm.tab10(c % 10) for c in classes],
            label=[_class_name(class_names, c) for c in classes])
    ax.set_xlabel(f"E[z{d}|x] ({score_label.format(rate_per_dimension[d])})")
    ax.set_ylabel("examples")
  axes[0][-1].legend(fontsize=8, loc="upper right")
  fig.suptitle(f"Posterior means of the top-{len(dims)} dimensions by class - {title}")
  fig.tight_layout()
  return fig


def curves(scalars_by_split, title, tags=("elbo", "rate", "distortion")):
  """Train and validation curves; scalars_by_split = {"train"|"eval": summaries.read_scalars()}."""
  fig, axes = plt.subplots(1, len(tags), figsize=(5 * len(tags), 4.2), squeeze=False)
  names = {"train": "train (batch mean)", "eval": "validation"}
  for ax, tag in zip(axes[0], tags):
    for split, scalars in scalars_by_split.items():
      if tag in scalars:
        ax.plot(*scalars[tag], label=names.get(split, split))
    ax.set_xlabel("step")
    ax.set_ylabel(f"{tag} (nats per example)")
    ax.set_title(tag)
    ax.legend()
  fig.suptitle(f"Training curves - {title}")
  fig.tight_layout()
  return fig
