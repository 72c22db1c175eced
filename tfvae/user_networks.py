"""Your own Keras networks in a tfvae model: what they must return, the checks made before
anything is trained or written, and how a run stores and rebuilds them.

Parts (each optional; what is left out is built from the Config as before):
  encoder: a Keras 3 model x [B, *data_shape] -> either a float Tensor [B, F] of features (tfvae
    adds the posterior head: a diagonal Gaussian, or the inverse autoregressive flow of
    --posterior=iaf) or a `tfd.Distribution` q(z|x) with batch [B] and event [latent_dim], used
    as it is.
  decoder: a Keras 3 model z [B, latent_dim] -> either the parameters of the likelihood, a float
    Tensor [B, *param_shape] (for a named likelihood: data_shape, or data_shape with twice the
    channels for normal_per_pixel), or a `tfd.Distribution` p(x|z) with batch [B] and event
    data_shape (how Student-t, logistic mixtures or a per-pixel scale are brought).
  likelihood: a Keras layer params [..., *param_shape] -> `tfd.Distribution` with batch [...]
    and event data_shape (its weights train with the model), for a decoder that returns
    parameters. A likelihood *name* is Config.likelihood.
  prior: a Keras layer whose call() (no argument) returns p(z), a `tfd.Distribution` with
    event [latent_dim] and batch []. A prior *name* is Config.prior.

Factories: a config may name the encoder and decoder instead (ModelConfig.encoder/decoder,
--encoder=module.path:function, recorded in config.json): `from_config` imports the module and
calls function(data_shape, latent_dim) when a run trains or resumes, and uses the Keras model
it returns exactly as a network passed to tfvae.fit; loading a run imports the module (so that
its registered classes deserialize) and rebuilds the stored network, without calling it.

A run stores each part's Keras serialization (keras.saving.serialize_keras_object, JSON) in
WORKDIR/networks/<part>.json and its weights in the checkpoints. Loading deserializes them with
safe_mode=True (no lambda or other code is run from the run folder; nothing is unpickled): a
custom layer or model class must be registered with keras.saving.register_keras_serializable in
a module the loading process has imported.
"""

import dataclasses
import importlib
import json
import os
import re

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import atomic
from tfvae import keras_scope
from tfvae.errors import ConfigError

tfd = tfp.distributions

NETWORKS_DIRNAME = "networks"
PARTS = ("encoder", "decoder", "likelihood", "prior")
# The families whose networks can be given (the rest build their own: a later step).
FAMILIES = ("vae", "ae", "sparse_ae", "denoising_ae", "contractive_ae")


class NetworkError(ConfigError):
  """A user network that does not fit the data or the model, or cannot be stored."""


@dataclasses.dataclass(frozen=True)
class Parts:
  """User networks for a model (each None: built from the Config)."""
  encoder: keras.Model | None = None
  decoder: keras.Model | None = None
  likelihood: keras.layers.Layer | None = None
  prior: keras.layers.Layer | None = None

  def given(self) -> dict:
    """{part name: Keras object} of the parts that are given."""
    return {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}

  def __bool__(self):
    return bool(self.given())


def serialize(name: str, obj) -> dict:
  """The Keras serialization of a part, checked to deserialize (safe_mode) to an object of the
  same class.

  Raises:
    NetworkError: naming the part, if it is not a Keras layer or model, or does not serialize
      and deserialize (a custom class not registered, a Lambda layer).
  """
  return _round_trip(name, obj)[0]


def _round_trip(name, obj):
  """(serialization, a fresh object deserialized from it) of a part (see `serialize`)."""
  if not isinstance(obj, keras.layers.Layer):
    raise NetworkError(f"{name}: expected a Keras 3 model or layer, got {type(obj).__name__}"
                       + (" (a tf_keras/Keras 2 object: build it with `import keras`, Keras 3)"
                          if type(obj).__module__.startswith("tf_keras") else "") + ".")
  try:
    config = keras.saving.serialize_keras_object(obj)
    json.dumps(config)
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
  except Exception as e:  # pylint: disable=broad-except  (Keras raises many kinds here)
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise NetworkError(
        f"{name}: {type(obj).__name__} cannot be stored with the run ({type(e).__name__}: "
        f"{reason}). Register its classes with @keras.saving.register_keras_serializable() and "
        "give them get_config(), or avoid Lambda layers; or pass the network again when "
        f"loading: tfvae.load(workdir, {name}=...).") from None
  if type(clone) is not type(obj):
    raise NetworkError(f"{name}: {type(obj).__name__} deserializes as {type(clone).__name__}: "
                       "register its class with @keras.saving.register_keras_serializable().")
  return config, clone


def deserialize(name: str, config: dict):
  """A fresh part (its weights not built or initialized anew) from its serialization."""
  try:
    return keras.saving.deserialize_keras_object(config, safe_mode=True)
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise NetworkError(
        f"The run's {name} network does not load ({type(e).__name__}: {reason}). Import the "
        "module that registers its classes first, or pass it again: "
        f"tfvae.load(workdir, {name}=...).") from None


def copies(parts: Parts) -> Parts:
  """Fresh copies of the given parts, rebuilt from their serialization (so under the caller's
  strategy scope, when there is one). A built part's weights are copied (a pretrained network
  trains on from them); an unbuilt one is initialized when the model is built (from the run's
  seed). The caller's objects are templates: tfvae never trains or changes them."""
  out = {}
  for name, obj in parts.given().items():
    _, clone = _round_trip(name, obj)
    if obj.built and obj.weights and clone.built and [w.shape for w in clone.weights] == [
        w.shape for w in obj.weights]:
      clone.set_weights(obj.get_weights())  # a pretrained network trains on from its weights
    out[name] = clone
  return Parts(**out)


def _describe(value) -> str:
  if isinstance(value, tfd.Distribution):
    return (f"a {type(value).__name__} with batch {value.batch_shape.as_list()} and event "
            f"{value.event_shape.as_list()}")
  if tf.is_tensor(value):
    return f"a Tensor {list(value.shape)}"
  return f"a {type(value).__name__}"


def _call(name, fn, *args):
  try:
    return fn(*args)
  except Exception as e:  # pylint: disable=broad-except  (the user's network raised)
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    shapes = ", ".join(str(list(a.shape)) for a in args)
    raise NetworkError(f"{name}: calling it on {shapes or 'no input'} failed "
                       f"({type(e).__name__}: {reason}).") from None


def param_shape(likelihood: str, data_shape) -> tuple:
  """The per-example shape of a named likelihood's parameters for data_shape."""
  data_shape = tuple(data_shape)
  if likelihood == "normal_per_pixel":
    return (*data_shape[:-1], 2 * data_shape[-1])
  return data_shape


def check(parts: Parts, data_shape, latent_dim: int, likelihood: str, posterior: str,
          model: str) -> None:
  """Calls each given part on a batch of 2 zeros and checks what it returns.

  Args:
    parts: Parts (the objects are not changed: the checks run on copies).
    data_shape: the shape of one example, [H, W, C] or [D].
    latent_dim: D of the codes.
    likelihood: Config.likelihood, used where the decoder returns parameters and no likelihood
      layer is given.
    posterior: Config.posterior ("diagonal" or "iaf").
    model: Config.model (the family).

  Raises:
    NetworkError: one line naming the network, what it must return and what it returned.
  """
  if not parts:
    return
  if model not in FAMILIES:
    raise NetworkError(f"--model={model} builds its own networks; user networks "
                       f"({', '.join(parts.given())}) work with {', '.join(FAMILIES)}.")
  parts = copies(parts)
  batch, data_shape = 2, tuple(data_shape)
  if parts.encoder is not None:
    out = _call("encoder", parts.encoder, tf.zeros([batch, *data_shape]))
    if isinstance(out, tfd.Distribution):
      if out.batch_shape.as_list() != [batch] or out.event_shape.as_list() != [latent_dim]:
        raise NetworkError(
            f"encoder: for x {[batch, *data_shape]} expected q(z|x) with batch [{batch}] and "
            f"event [{latent_dim}] (--latent_dim), got {_describe(out)}.")
      if posterior == "iaf":
        raise NetworkError("encoder: it returns a distribution, so --posterior=iaf has no "
                           "features to condition the flow on: return features [B, F] instead.")
    elif not (tf.is_tensor(out) and len(out.shape) == 2 and out.shape[0] == batch):
      raise NetworkError(f"encoder: for x {[batch, *data_shape]} expected features [{batch}, F]"
                         f" or a tfd.Distribution q(z|x), got {_describe(out)}.")
  if parts.decoder is not None:
    out = _call("decoder", parts.decoder, tf.zeros([batch, latent_dim]))
    if isinstance(out, tfd.Distribution):
      if out.batch_shape.as_list() != [batch] or tuple(out.event_shape.as_list()) != data_shape:
        raise NetworkError(
            f"decoder: for z [{batch}, {latent_dim}] expected p(x|z) with batch [{batch}] and "
            f"event {list(data_shape)} (the data's shape), got {_describe(out)}.")
      if parts.likelihood is not None:
        raise NetworkError("likelihood: the decoder returns a distribution already; give a "
                           "likelihood layer only with a decoder that returns parameters.")
    elif not tf.is_tensor(out) or len(out.shape) < 1 or out.shape[0] != batch:
      raise NetworkError(f"decoder: for z [{batch}, {latent_dim}] expected parameters "
                         f"[{batch}, ...] or a tfd.Distribution p(x|z), got {_describe(out)}.")
    elif parts.likelihood is None and tuple(out.shape[1:]) != param_shape(likelihood,
                                                                           data_shape):
      raise NetworkError(
          f"decoder: for z [{batch}, {latent_dim}] and --likelihood={likelihood} expected "
          f"parameters {[batch, *param_shape(likelihood, data_shape)]}, got {_describe(out)}.")
  if parts.likelihood is not None:
    if parts.decoder is not None:
      params = _call("decoder", parts.decoder, tf.zeros([batch, latent_dim]))
    else:
      params = tf.zeros([batch, *param_shape(likelihood, data_shape)])
    out = _call("likelihood", parts.likelihood, params)
    if (not isinstance(out, tfd.Distribution) or out.batch_shape.as_list() != [batch]
        or tuple(out.event_shape.as_list()) != data_shape):
      raise NetworkError(
          f"likelihood: for parameters {list(params.shape)} expected a tfd.Distribution with "
          f"batch [{batch}] and event {list(data_shape)} (the data's shape), got "
          f"{_describe(out)}.")
  if parts.prior is not None:
    out = _call("prior", parts.prior)
    if (not isinstance(out, tfd.Distribution) or out.batch_shape.as_list()
        or out.event_shape.as_list() != [latent_dim]):
      raise NetworkError(f"prior: expected a tfd.Distribution p(z) with batch [] and event "
                         f"[{latent_dim}] (--latent_dim), got {_describe(out)}.")


# The parts a config can name by factory (--encoder, --decoder: ModelConfig fields).
FACTORY_PARTS = ("encoder", "decoder")
_FACTORY_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def check_factory_name(name: str, value: str, family: str) -> None:
  """Checks the form of a factory flag's value (ModelConfig.check calls it).

  Args:
    name: the flag, "encoder" or "decoder".
    value: "" (tfvae builds the network) or "module.path:function".
    family: the config's --model.

  Raises:
    ConfigError: one line naming the flag, for another form or a family of another kind
      than FAMILIES.
  """
  if not value:
    return
  if not _FACTORY_NAME.match(value):
    raise ConfigError(f"--{name}={value!r} must be module.path:function (a factory "
                      f"f(data_shape, latent_dim) -> keras.Model), or empty.")
  if family and family not in FAMILIES:
    raise ConfigError(f"--{name}={value}: --model={family} builds its own networks; user "
                      f"networks work with {', '.join(FAMILIES)}.")


def _first_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}".rstrip(": ")


def _import_factory(name: str, value: str):
  """The function that --name=value (module.path:function) names, its module imported."""
  module_name, function_name = value.split(":")
  try:
    module = importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except  (the user's module raised)
    hint = (" (is its folder on PYTHONPATH?)" if isinstance(e, ModuleNotFoundError)
            and e.name and module_name.startswith(e.name) else "")
    raise NetworkError(f"--{name}={value}: cannot import {module_name} ({_first_line(e)})"
                       f"{hint}.") from None
  function = getattr(module, function_name, None)
  if not callable(function):
    where = getattr(module, "__file__", None) or module_name
    why = "" if function is None else f" ({type(function).__name__}, not callable)"
    raise NetworkError(f"--{name}={value}: {module_name} ({where}) has no function "
                       f"{function_name}{why}.")
  return function


def _from_factory(name: str, value: str, data_shape: tuple, latent_dim: int,
                  dtype_policy: str, seed: int) -> keras.Model:
  """The network factory --name=value builds for data_shape and latent_dim."""
  function = _import_factory(name, value)
  call = f"{value.split(':')[1]}({data_shape}, {latent_dim})"
  try:
    with keras_scope.building(dtype_policy, seed):  # initial weights from the run's seed
      network = function(data_shape, latent_dim)
  except Exception as e:  # pylint: disable=broad-except  (the user's factory raised)
    raise NetworkError(f"--{name}={value}: {call} failed ({_first_line(e)}).") from None
  if not isinstance(network, keras.Model):
    what = type(network).__name__ + (" (a tf_keras/Keras 2 model: build it with `import "
                                     "keras`, Keras 3)"
                                     if type(network).__module__.startswith("tf_keras") else "")
    raise NetworkError(f"--{name}={value}: {call} returned a {what}, not a keras.Model.")
  return network


def from_config(config, parts: "Parts | None" = None, workdir: str | None = None) -> Parts:
  """The user networks of a run: `parts`, with the encoder and decoder that the config names
  by factory (--encoder/--decoder=module.path:function, ModelConfig) added. The one place a
  factory is resolved: training (`tfvae.fit`, python -m tfvae.train, resume) and loading
  (tfvae/loading.py) call it.

  Training (workdir None): each factory's module is imported and the function is called with
  (data_shape, latent_dim): config.data.image_shape as a tuple ((H, W, C) or (D,)) and
  config.model.latent_dim, under the run's dtype policy and --seed (so its initial weights are
  the run's); the Keras model it returns is used exactly as a network passed to `tfvae.fit`
  (checked, stored in WORKDIR/networks, compared with the stored one on resume).
  Loading (workdir the run): the module of each factory whose part is not given is imported,
  which registers the classes its network is made of; the network itself is then rebuilt from
  WORKDIR/networks (`reconcile`): the factory is not called, and nothing in the run folder
  runs.

  Args:
    config: a tfvae.Config; for training, config.data.image_shape resolved from the data.
    parts: optional Parts given by the caller.
    workdir: the run being loaded; None when training.

  Returns:
    Parts.

  Raises:
    NetworkError: one line naming the flag: a module that cannot be imported, no such
      function, a factory that raises or does not return a keras.Model; in training, a part
      both given and named by factory (ambiguous); in loading, a factory's network that the
      run did not store.
  """
  parts = parts or Parts()
  named = {name: getattr(config.model, name) for name in FACTORY_PARTS
           if getattr(config.model, name)}
  built = {}
  for name, value in named.items():
    if workdir is None:
      if getattr(parts, name) is not None:
        raise NetworkError(f"{name}: given both as a network ({name}=) and by the config "
                           f"(--{name}={value}): pass one of them.")
      built[name] = _from_factory(name, value, tuple(config.data.image_shape),
                                  config.model.latent_dim, config.training.dtype_policy,
                                  config.training.seed)
    elif getattr(parts, name) is None:
      _import_factory(name, value)  # registers the classes the stored network names
      if not os.path.exists(os.path.join(folder(workdir), f"{name}.json")):
        raise NetworkError(f"--{name}={value}: {folder(workdir)} has no {name}.json: the run "
                           "was not stored whole (train it again).")
  return Parts(**{**parts.given(), **built})


def require_named(config, parts: "Parts | None") -> None:
  """Raises NetworkError if the config names a factory whose network is not among `parts` (a
  model would otherwise be built with tfvae's own network in its place): resolve them with
  `from_config`."""
  for name in FACTORY_PARTS:
    if getattr(config.model, name, "") and (parts is None or getattr(parts, name) is None):
      raise NetworkError(f"--{name}={getattr(config.model, name)}: the config names a factory, "
                         "but no network was given: build its parts with "
                         "tfvae.user_networks.from_config(config).")


def folder(workdir: str) -> str:
  return os.path.join(workdir, NETWORKS_DIRNAME)


def stored(workdir: str) -> dict:
  """{part name: serialization} of the networks a run stored ({} for none)."""
  out = {}
  for name in PARTS:
    path = os.path.join(folder(workdir), f"{name}.json")
    if os.path.exists(path):
      try:
        with open(path) as f:
          out[name] = json.load(f)
      except (OSError, ValueError) as e:
        raise NetworkError(f"{path} is not a stored network ({type(e).__name__}: {e}).") \
            from None
  return out


def reconcile(workdir: str, parts: Parts) -> Parts:
  """The parts of a run in `workdir`: those given, each checked against the one the run stored;
  the stored ones, rebuilt, for those not given. Writes nothing (`save` does).

  Raises:
    NetworkError: a given part that differs from the stored one, or that a run trained
      without it is given (another network: train in another workdir, or with overwrite).
  """
  saved = stored(workdir)
  trained = os.path.exists(os.path.join(workdir, "config.json"))
  for name, obj in parts.given().items():
    if name in saved and _canonical(saved[name]) == _canonical(serialize(name, obj)):
      continue
    if name in saved or trained:
      what = "differs from the one stored" if name in saved else "was not given then"
      raise NetworkError(
          f"{name}: {what} in {folder(workdir)} ({workdir} was trained with "
          f"{', '.join(sorted(saved)) or 'no user networks'}): pass the same networks to "
          "resume, or train in another workdir (or with overwrite).")
  rebuilt = {name: deserialize(name, config) for name, config in saved.items()
             if getattr(parts, name) is None}
  return Parts(**{**parts.given(), **rebuilt})


def save(workdir: str, parts: Parts) -> None:
  """Writes the given parts' serializations to WORKDIR/networks (each file replaced whole)
  unless the run stored them already. Call it holding the workdir's lock (tfvae/lock.py)."""
  if not parts or stored(workdir):
    return
  os.makedirs(folder(workdir), exist_ok=True)
  for name, obj in parts.given().items():
    atomic.write_json(os.path.join(folder(workdir), f"{name}.json"), serialize(name, obj),
                      indent=1, sort_keys=True)


_NUMBERED = re.compile(r"^([a-z][a-z0-9_]*?)_\d+$")


def _canonical(config):
  """A serialization with the names Keras numbers per process (dense_3, functional_7) reduced
  to their stem, so the same architecture compares equal in every process."""
  return None if config is None else json.dumps(_stems(config), sort_keys=True)


def _stems(value):
  if isinstance(value, dict):
    return {k: _stems(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_stems(v) for v in value]
  if isinstance(value, str):
    return _NUMBERED.sub(r"\1", value)
  return value
