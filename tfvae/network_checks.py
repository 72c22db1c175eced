"""The checks made on your own networks (tfvae/user_networks.py) before anything is trained
or written: each given part is called, as a copy, on a batch of two zeros shaped as the family
gives it (`config.model.accepts()`), and what does not fit is refused in one line naming the
network, what it must take or return and what it takes or returned.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import priors
from tfvae.user_networks import copies, NetworkError, Parts

tfd = tfp.distributions


def _describe(value) -> str:
  if isinstance(value, tfd.Distribution):
    classes = (f" over {value.logits_parameter().shape[-1]} classes"
               if isinstance(value, tfd.Categorical) else "")
    return (f"a {type(value).__name__} with batch {value.batch_shape.as_list()} and event "
            f"{value.event_shape.as_list()}{classes}")
  if tf.is_tensor(value):
    return f"a Tensor {list(value.shape)}"
  return f"a {type(value).__name__}"


def _call(name, fn, *args, on=None):
  """fn(*args); NetworkError naming `name` and what it was called on (`on`, else the shapes)
  where the user's network raises."""
  try:
    return fn(*args)
  except Exception as e:  # pylint: disable=broad-except  (the user's network raised)
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    on = on or ", ".join(str(list(a.shape)) for a in args) or "no input"
    raise NetworkError(f"{name}: calling it on {on} failed "
                       f"({type(e).__name__}: {reason}).") from None


def _input_fits(name, network, label, shape, note):
  """Raises NetworkError if `network` declares an input (keras.Input) other than [B, *shape].
  Networks that declare none (subclassed, or built on their first call) are only called."""
  try:
    inputs = network.inputs
  except (AttributeError, ValueError):
    return
  if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
    return
  declared = tuple(inputs[0].shape[1:])
  if len(declared) != len(shape) or any(a is not None and a != b
                                        for a, b in zip(declared, shape)):
    raise NetworkError(f"{name}: expected input {label} [B, {', '.join(map(str, shape))}] "
                       f"({note}), got a network whose input is {list(inputs[0].shape)}.")


def param_shape(likelihood: str, data_shape) -> tuple:
  """The per-example shape of a named likelihood's parameters for data_shape."""
  data_shape = tuple(data_shape)
  if likelihood == "normal_per_pixel":
    return (*data_shape[:-1], 2 * data_shape[-1])
  return data_shape


def check(parts: Parts, config) -> None:
  """Calls each given part on a batch of 2 zeros and checks what it returns, for the family
  of `config` (what its `config.model.accepts()` declares).

  Args:
    parts: Parts (the objects are not changed: the checks run on copies).
    config: the run's tfvae.Config, config.data.image_shape (and num_classes, for a
      classifier) resolved from the data; its model section's latent_dim and likelihood (used
      where the decoder returns parameters and no likelihood layer is given) and
      condition_dim(config) (C, the width of the condition c, for the cvae).

  Raises:
    NetworkError: one line naming the network, what it must take or return and what it
      takes or returned; or a part the family does not take.
  """
  if not parts:
    return
  accepts, family = config.model.accepts(), config.family
  not_taken = dict(accepts.not_taken)
  for name in parts.given():
    if name in not_taken:
      raise NetworkError(f"{name}: {not_taken[name]}.")
    if name not in accepts.parts:
      raise NetworkError(f"{name}: --model={family} takes no {name} network (it "
                         + (f"takes {', '.join(accepts.parts)})." if accepts.parts
                            else "builds its own networks)."))
  parts = copies(parts)
  batch, data_shape = 2, tuple(config.data.image_shape)
  latent_dim, likelihood = config.model.latent_dim, config.model.likelihood
  classes, condition = config.data.num_classes, config.model.condition_dim(config)
  if parts.encoder is not None:
    _input_fits("encoder", parts.encoder, "x", data_shape, "the data's shape")
    out = _call("encoder", parts.encoder, tf.zeros([batch, *data_shape]))
    if isinstance(out, tfd.Distribution):
      if out.batch_shape.as_list() != [batch] or out.event_shape.as_list() != [latent_dim]:
        raise NetworkError(
            f"encoder: for x {[batch, *data_shape]} expected q(z|x) with batch [{batch}] and "
            f"event [{latent_dim}] (--latent_dim), got {_describe(out)}.")
      if accepts.features_only:
        raise NetworkError(f"encoder: it returns a distribution, so {accepts.features_only}: "
                           "return features [B, F] instead.")
    elif not (tf.is_tensor(out) and len(out.shape) == 2 and out.shape[0] == batch):
      raise NetworkError(f"encoder: for x {[batch, *data_shape]} expected features [{batch}, F]"
                         f" or a tfd.Distribution q(z|x), got {_describe(out)}.")
  names = accepts.decoder_input
  z_label = names[0] if len(names) == 1 else f"[{', '.join(names)}]"
  width = accepts.decoder_width(latent_dim, classes, condition)
  z_note = ("--latent_dim" if names == ("z",) else " and ".join(
      f"{n} [{accepts.input_width(n, latent_dim, classes, condition)}]" for n in names)
            + " joined on the last axis")
  z, z_text = tf.zeros([batch, width]), f"{z_label} {[batch, width]}"
  if parts.decoder is not None:
    _input_fits("decoder", parts.decoder, z_label, (width,), z_note)
    out = _call("decoder", parts.decoder, z, on=f"{z_text} ({z_note})")
    if isinstance(out, tfd.Distribution):
      if out.batch_shape.as_list() != [batch] or tuple(out.event_shape.as_list()) != data_shape:
        raise NetworkError(
            f"decoder: for {z_text} expected p(x|z) with batch [{batch}] and event "
            f"{list(data_shape)} (the data's shape), got {_describe(out)}.")
      if parts.likelihood is not None:
        raise NetworkError("likelihood: the decoder returns a distribution already; give a "
                           "likelihood layer only with a decoder that returns parameters.")
    elif not tf.is_tensor(out) or len(out.shape) < 1 or out.shape[0] != batch:
      raise NetworkError(f"decoder: for {z_text} expected parameters [{batch}, ...] or a "
                         f"tfd.Distribution p(x|z), got {_describe(out)}.")
    elif parts.likelihood is None and tuple(out.shape[1:]) != param_shape(likelihood,
                                                                           data_shape):
      raise NetworkError(
          f"decoder: for {z_text} and --likelihood={likelihood} expected parameters "
          f"{[batch, *param_shape(likelihood, data_shape)]}, got {_describe(out)}.")
  if parts.likelihood is not None:
    if parts.decoder is not None:
      params = _call("decoder", parts.decoder, z, on=f"{z_text} ({z_note})")
    else:
      params = tf.zeros([batch, *param_shape(likelihood, data_shape)])
    out = _call("likelihood", parts.likelihood, params)
    if (not isinstance(out, tfd.Distribution) or out.batch_shape.as_list() != [batch]
        or tuple(out.event_shape.as_list()) != data_shape):
      raise NetworkError(
          f"likelihood: for parameters {list(params.shape)} expected a tfd.Distribution with "
          f"batch [{batch}] and event {list(data_shape)} (the data's shape), got "
          f"{_describe(out)}.")
  if parts.prior is not None and accepts.prior_input == "c":
    _check_conditional_prior(parts.prior, batch, condition, latent_dim)
  elif parts.prior is not None:
    out = _call("prior", priors.call_user_prior, parts.prior, on="no input")
    if (not isinstance(out, tfd.Distribution) or out.batch_shape.as_list()
        or out.event_shape.as_list() != [latent_dim]):
      raise NetworkError(f"prior: expected a tfd.Distribution p(z) with batch [] and event "
                         f"[{latent_dim}] (--latent_dim), got {_describe(out)}.")
  if parts.classifier is not None:
    on_x = accepts.classifier_input == "x"
    shape = data_shape if on_x else (latent_dim,)
    label = "x" if on_x else "z"
    _input_fits("classifier", parts.classifier, label, shape,
                "the data's shape" if on_x else "--latent_dim")
    out = _call("classifier", parts.classifier, tf.zeros([batch, *shape]),
                on=f"{label} {[batch, *shape]}")
    if isinstance(out, tfd.Categorical):
      fits = out.batch_shape.as_list() == [batch] and (
          out.logits_parameter().shape[-1] == classes)
    else:
      fits = tf.is_tensor(out) and out.shape.as_list() == [batch, classes]
    if not fits:
      raise NetworkError(
          f"classifier: for {label} {[batch, *shape]} expected logits [{batch}, {classes}] "
          f"({classes} classes) or a tfd.Categorical with batch [{batch}] over {classes} "
          f"classes, got {_describe(out)}.")


def _check_conditional_prior(prior, batch, condition_dim, latent_dim):
  """Raises NetworkError unless `prior` maps c [batch, C] to p(z|c) (batch [batch], event
  [latent_dim]) or to its parameters [batch, 2 * latent_dim] (`Accepts.prior_input` "c")."""
  _input_fits("prior", prior, "c", (condition_dim,), "the condition's width C")
  on = f"c {[batch, condition_dim]}"
  out = _call("prior", prior, tf.zeros([batch, condition_dim]), on=on)
  if isinstance(out, tfd.Distribution):
    fits = out.batch_shape.as_list() == [batch] and out.event_shape.as_list() == [latent_dim]
  else:
    fits = tf.is_tensor(out) and out.shape.as_list() == [batch, 2 * latent_dim]
  if not fits:
    raise NetworkError(
        f"prior: for {on} expected p(z|c), a tfd.Distribution with batch [{batch}] and event "
        f"[{latent_dim}] (--latent_dim), or its parameters (loc, raw scale) "
        f"[{batch}, {2 * latent_dim}], got {_describe(out)}.")
