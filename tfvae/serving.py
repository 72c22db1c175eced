"""SavedModel export of a trained model: its serving signatures (`python -m tfvae.export` runs it).

The SavedModel holds only the model's variables and tf.functions that return dicts of tensors,
so it loads with `tf.saved_model.load` (and serves with TF Serving / `saved_model_cli`) in a
process that never imports TensorFlow Probability. Signatures (H, W, C = image shape, D =
latent_dim, all float32 unless noted):

  encode(x [N, H, W, C])          -> loc [N, D], scale [N, D]   (posterior q(z|x)); for
                                     deterministic autoencoders code [N, D]
  decode(z [N, D])                -> mean [N, H, W, C] and the likelihood's parameters:
                                     logits (bernoulli, continuous_bernoulli) or loc, scale
                                     (normal, normal_per_pixel, laplace), each [N, H, W, C]
  sample(n int32 [], seed int32 [2]) -> mean [n, H, W, C], sample [n, H, W, C]
                                     (z ~ p(z), or from the sampler fitted to the codes when
                                     one was exported (tfvae/samplers), decoded; stateless
                                     seed: same seed, same images)
  reconstruct(x [N, H, W, C])     -> reconstruction [N, H, W, C]  (decoder mean at posterior mean)
  serving_default                 =  reconstruct
  elbo(x [N, H, W, C])            -> elbo, rate, distortion [N], nats (num_samples from the
                                     config, a fixed seed: deterministic)
  classify(x [N, H, W, C])        -> probabilities [N, K] (sum to 1), label int64 [N] (argmax)
Input contract: x is float32 in [0, 1], the stored pixels divided by their maximum (uint8 / 255;
digits / 16); for a model trained with --binarization=static/dynamic, 0/1 pixels give the
log-likelihoods the run reports (gray levels are accepted). Values outside [0, 1] (raw 0..255
pixels, NaN) are rejected with an InvalidArgumentError that says so; other dtypes (float64) are
rejected by the signature itself: cast with np.float32 first. Vectors and codes z must be
finite; M2's class indices y must be in [0, K) (sample's label < K); sample draws at most
MAX_SAMPLES = 65536 examples per call (call it again with other seeds for more). Each refusal
is an InvalidArgumentError naming the signature, the argument and what it expects (the checks:
tfvae/serving_inputs.py). The export's
assets.extra/tfvae.json records the contract, the step and the signatures.

sample and elbo exist only for generative models (a prior p(z)); deterministic autoencoders
(ae, sparse_ae, denoising_ae, contractive_ae) export encode, decode, reconstruct, and sample
once a sampler is fitted to their codes; classify exists only for models with a classifier
(pc_vae, m2). A fitted sampler (gmm, two_stage: `export(..., sampler=)`) is exported as
variables and TensorFlow ops: loading needs neither scikit-learn nor TFP; tfvae.json records
it under "sampler".

M2 (y is a class index int64 [N], K classes) exports instead: classify; encode(x, y) -> loc,
scale; decode(z, y) -> mean and the likelihood's parameters; sample(n, seed, label int32 [])
-> mean, sample, label int64 [n] (label < 0: y ~ p(y), else that class: conditional
generation); style_transfer(x) -> images [N, K, H, W, C] (z of each image decoded with every
class); reconstruct (at the predicted class); elbo(x) -> elbo (the bound -U(x) on log p(x)),
rate, distortion.

CVAE (Sohn et al. 2015; y a class index int64 [N], K classes; q(z|x, y) and p(z|y) need y)
exports: encode(x, y) -> loc, scale; decode(z, y); sample(n, seed, label int32 []) -> mean,
sample, label int64 [n] (z ~ p(z|y); label < 0 draws y uniformly, else that class);
reconstruct(x, y) (= serving_default); elbo(x, y) -> elbo, rate, distortion [N], the ELBO of x
given y (rate = KL(q(z|x,y) || p(z|y))); style_transfer(x, y) -> images [N, K, H, W, C].
A CVAE on real conditions c float32 [N, C] takes `condition` where this one takes y (and
sample(n, seed, condition [n or 1, C])): tfvae/serving_conditions.py; tfvae.json records C as
"condition_dim" (0 for other models).
"""

import os
import shutil
import time

import tensorflow as tf

from tfvae import atomic
from tfvae import flows
from tfvae import lock
from tfvae import serving_conditions
from tfvae import serving_inputs
from tfvae.serving_inputs import MAX_SAMPLES  # noqa: F401 (serving.MAX_SAMPLES, docs/running.md)

from tfvae import workdir as workdir_lib
from tfvae.models import interface

_ELBO_SEED = (0, 0)


def _likelihood_params(likelihood, p_x):
  """The decode signature's outputs: mean and the likelihood's parameters, each [N, H, W, C]."""
  base = p_x.distribution
  if likelihood in ("poisson", "negative_binomial"):
    return {"mean": p_x.mean()}
  if likelihood in ("bernoulli", "continuous_bernoulli"):
    return {"mean": p_x.mean(), "logits": base.logits}
  return {"mean": p_x.mean(), "loc": base.loc,
          "scale": tf.broadcast_to(base.scale, tf.shape(base.loc))}


class _Standardization:
  """--standardize (vectors): raw features in, raw features out; identity otherwise."""

  def __init__(self, config):
    self.on = bool(config.data.feature_mean)
    if self.on:
      self.mean = tf.constant(config.data.feature_mean, tf.float32)
      self.scale = tf.constant(config.data.feature_scale, tf.float32)

  def standardize(self, x):
    return (x - self.mean) / self.scale if self.on else x

  def unstandardize(self, x):
    return x * self.scale + self.mean if self.on else x


def _raw_units(decode, config):
  """`decode(z, y)` whose p(x|z) mean, loc and scale are in raw feature units (--standardize:
  x_raw = x * feature_scale + feature_mean), else `decode` itself."""
  if not config.data.feature_mean:
    return decode
  raw = _Standardization(config)

  class RawUnits:
    def __init__(self, p_x):
      self.p_x, self.distribution = p_x, self

    def mean(self):
      return raw.unstandardize(self.p_x.mean())

    @property
    def loc(self):
      return raw.unstandardize(self.p_x.distribution.loc)

    @property
    def scale(self):
      return self.p_x.distribution.scale * raw.scale

  return lambda z, y: RawUnits(decode(z, y))


class _Exported(tf.Module):
  """The signatures of any model, from what it declares (tfvae/models/interface.py: its capability types); tracks the
  variables only and reaches the model through closures (docs/platform.md)."""

  def __init__(self, model, sampler=None):
    super().__init__(name="tfvae")
    fitted = sampler is not None and sampler.kind != "standard"
    self.model_variables = list(model.variables) + (list(sampler.variables) if fitted else [])
    config = model.config
    k = model.num_classes if isinstance(model, interface.LabelConditional) else 0
    shape, images = config.data.image_shape, len(config.data.image_shape) == 3
    generative = isinstance(model, interface.LatentVariableModel)
    x_spec = tf.TensorSpec([None, *shape], tf.float32, name="x")
    z_spec = tf.TensorSpec([None, config.model.latent_dim], tf.float32, name="z")
    covariates = serving_conditions.width(model)  # C of a cvae on real conditions, else 0
    y_spec = ([tf.TensorSpec([None], tf.int64, name="y")] if k
              else serving_conditions.spec(model))
    raw = _Standardization(config)
    decode_raw = _raw_units(model.decode, config)

    def x_in(x, signature):
      return raw.standardize(serving_inputs.checked(x, "x", signature, shape, images))

    def onehot(y, signature, x):
      """c of what a conditional model is given with x (or z): y's one-hot (one class per
      row), or the checked condition."""
      if covariates:
        return serving_conditions.checked(y[0], covariates, signature, tf.shape(x)[0])
      return (tf.one_hot(serving_inputs.checked_labels(y[0], k, "y", signature,
                                                       rows=tf.shape(x)[0]), k) if k
              else None)

    @tf.function(input_signature=[x_spec, *y_spec], autograph=False)
    def encode(x, *y):
      q_z = model.encode(x_in(x, "encode"), onehot(y, "encode", x))
      if not generative:
        return {"code": q_z.mean()}
      if isinstance(q_z, flows.FlowPosterior):  # q0's parameters, and the flow at q0's mean
        return {"loc": q_z.base.mean(), "scale": q_z.base.stddev(), "code": q_z.mean()}
      return {"loc": q_z.mean(), "scale": q_z.stddev()}

    @tf.function(input_signature=[z_spec, *y_spec], autograph=False)
    def decode(z, *y):
      z = serving_inputs.checked(z, "z", "decode", [config.model.latent_dim])
      return _likelihood_params(config.model.likelihood, decode_raw(z, onehot(y, "decode", z)))

    # Conditional models (cvae) take the class y wherever x goes in: reconstruct, elbo and
    # style_transfer are given it (their q(z|x, c) needs it).
    conditional = isinstance(model, interface.Conditional)
    given_spec = y_spec if conditional else []

    @tf.function(input_signature=[x_spec, *given_spec], autograph=False)
    def reconstruct(x, *y):
      x = x_in(x, "reconstruct")
      out = model.reconstruct(x, onehot(y, "reconstruct", x)) if y else model.reconstruct(x)
      return {"reconstruction": raw.unstandardize(out)}

    self.fns = {"serving_default": reconstruct, "encode": encode, "decode": decode,
                "reconstruct": reconstruct}
    if generative or fitted:
      label_spec = ([tf.TensorSpec([], tf.int32, name="label")] if k
                    else serving_conditions.spec(model))

      @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                    tf.TensorSpec([2], tf.int32, name="seed"), *label_spec],
                   autograph=False)
      def sample(n, seed, *label):
        n = serving_inputs.checked_count(n, "sample")
        if fitted:  # z from the sampler fitted to the codes
          out = sampler.draw(model, n, seed)
        elif covariates:  # z ~ p(z|c), one draw per row of c
          out = model.sample(n, seed, serving_conditions.checked(
              label[0], covariates, "sample", n, one_row_too=True))
        else:
          out = model.sample(n, seed, serving_inputs.checked_labels(label[0], k, "label",
                                                                    "sample", True)
                             if k else None)
        return {key: value if key == "label" else raw.unstandardize(value)
                for key, value in out.items()}

      self.fns["sample"] = sample
    if generative:

      @tf.function(input_signature=[x_spec, *given_spec], autograph=False)
      def elbo(x, *y):
        seed = tf.constant(_ELBO_SEED, tf.int32)
        if y:  # the ELBO of x given its class
          x = x_in(x, "elbo")
          return model.elbo(x, seed, onehot(y, "elbo", x))
        return model.elbo(x_in(x, "elbo"), seed)

      self.fns["elbo"] = elbo
    if isinstance(model, interface.Classifier):

      @tf.function(input_signature=[x_spec], autograph=False)
      def classify(x):
        probs = model.classify(x_in(x, "classify")).probs_parameter()
        return {"probabilities": probs, "label": tf.argmax(probs, axis=-1)}

      self.fns["classify"] = classify
    if k:

      @tf.function(input_signature=[x_spec, *given_spec], autograph=False)
      def style_transfer(x, *y):
        x = x_in(x, "style_transfer")
        out = (model.style_transfer(x, onehot(y, "style_transfer", x)) if y
               else model.style_transfer(x))
        return {"images": raw.unstandardize(out)}

      self.fns["style_transfer"] = style_transfer
    for name, fn in self.fns.items():
      if name != "serving_default":
        setattr(self, name, fn)

  def signatures(self):
    return dict(self.fns)


def export(model, path, step=None, checkpoint_step=None, sampler=None):
  """Writes `model` as a SavedModel and makes `path` point at it atomically.

  Each export is written to its own folder PATH.<time_ns> beside `path`; `path` is a symbolic
  link that os.replace swaps to the new folder only once the SavedModel is complete, then the
  previous folder is removed (only PATH.<time_ns> folders beside `path` are ever removed; a
  link at `path` to anything else is refused before the save). A reader (or a kill -9 at any
  moment) sees either the previous complete export or the new one. Copy it with `cp -rL` to
  follow the link.

  The folder also holds assets.extra/tfvae.json (the TF Serving place for extra files): the
  step, the model family and likelihood, the signatures and the input contract
  (tfvae/serving_inputs.py, `input_contract`).

  Args:
    model: a tfvae model (tfvae.models) with `config`, `encoder`, `decoder`, `prior()`.
    path: str, the export path (WORKDIR/export by convention).
    step: int or None, the training step of the run (recorded in tfvae.json).
    checkpoint_step: int or None, the step of the weights when they are not the last ones
      (the best checkpoint of early stopping); recorded as "checkpoint_step" (default: step).
    sampler: optional tfvae.samplers.Sampler the `sample` signature draws z from (None or the
      standard one: the prior); recorded as "sampler" (its kind, options and fit).

  Returns:
    The folder the link now points to.

  Raises:
    tfvae.lock.WorkdirInUse: if another process holds the lock of the folder `path` is in
      (the workdir): two exports at once would delete each other's folders.
    tfvae.errors.ForeignLink: if `path` is a link to anything but a PATH.<digits> folder
      beside it (tfvae.workdir.export_target).
  """
  path = os.path.abspath(path)
  with lock.hold(os.path.dirname(path)):
    return _export(model, path, step, checkpoint_step, sampler)


def _export(model, path, step, checkpoint_step, sampler):
  """export, once the folder's lock is held."""
  previous = workdir_lib.export_target(path)  # refuses a link tfvae did not make, before saving
  module = _Exported(model, sampler)
  parent, name = os.path.split(path)
  target = f"{path}.{time.time_ns()}"
  signatures = module.signatures()
  tf.saved_model.save(module, target, signatures=signatures)
  info = {"step": step, "checkpoint_step": step if checkpoint_step is None else checkpoint_step,
          "model": model.config.family, "likelihood": model.config.model.likelihood,
          "latent_dim": model.config.model.latent_dim, "signatures": sorted(signatures),
          "input": serving_inputs.input_contract(model.config),
          "condition_dim": serving_conditions.width(model),
          "sampler": (None if "sample" not in signatures else
                      sampler.info if sampler is not None else {"kind": "standard"})}
  os.makedirs(os.path.dirname(os.path.join(target, workdir_lib.EXPORT_INFO)), exist_ok=True)
  atomic.write_json(os.path.join(target, workdir_lib.EXPORT_INFO), info, indent=2)
  if os.path.isdir(path) and not os.path.islink(path):  # a plain folder: move it out of the way
    previous = f"{path}.{time.time_ns()}.old"
    os.replace(path, previous)
  link = f"{target}.link"
  os.symlink(os.path.basename(target), link)
  os.replace(link, path)  # atomic on POSIX
  if previous and previous != target:
    shutil.rmtree(previous, ignore_errors=True)
  # Folders of exports interrupted before their swap (kill -9) are never pointed at: remove them
  # (tfvae's own names only; a link among them as a link).
  for entry in os.listdir(parent):
    stale = os.path.join(parent, entry)
    if workdir_lib.own_export(name, entry) and stale != target:
      if os.path.isdir(stale) and not os.path.islink(stale):
        shutil.rmtree(stale, ignore_errors=True)
      else:
        os.remove(stale)
  return target
