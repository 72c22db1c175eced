"""Your own Keras networks in a tfvae model: the parts, what each family takes (`Accepts`), and
how a run stores and rebuilds them. The checks made before anything is trained or written are
tfvae/network_checks.py.

Parts (each optional; what is left out is built from the Config as before). Which parts a
family takes, and what its decoder and classifier are called on, its config declares
(`ModelConfig.accepts()`, an `Accepts`; docs/own_networks.md has a section per family):
  encoder: a Keras 3 model x [B, *data_shape] -> either a float Tensor [B, F] of features (tfvae
    adds the posterior head: a diagonal Gaussian, the inverse autoregressive flow of
    --posterior=iaf, m2's q(z|x, y) on the features joined with y or cvae's q(z|x, c) on the
    features joined with the condition c) or a `tfd.Distribution` q(z|x) with batch [B] and
    event [latent_dim], used as it is (not for iaf, m2 or cvae).
  decoder: a Keras 3 model over the family's decoder input [B, W] (z, or more than z joined on
    the last axis: hvae [z1, z2], m2 [z, y_onehot], cvae [z, c]) -> either the parameters of the
    likelihood, a float Tensor [B, *param_shape] (for a named likelihood: data_shape, or
    data_shape with twice the channels for normal_per_pixel), or a `tfd.Distribution` p(x|z)
    with batch [B] and event data_shape (how Student-t, logistic mixtures or a per-pixel scale
    are brought).
  likelihood: a Keras layer params [..., *param_shape] -> `tfd.Distribution` with batch [...]
    and event data_shape (its weights train with the model), for a decoder that returns
    parameters. A likelihood *name* is Config.likelihood.
  prior: a Keras layer whose call() (no argument) returns p(z), a `tfd.Distribution` with
    event [latent_dim] and batch []. A prior *name* is Config.prior. cvae's prior is p(z|c)
    (`Accepts.prior_input` "c"): a Keras model c [B, C] -> a `tfd.Distribution` with batch [B]
    and event [latent_dim], or its parameters [B, 2 * latent_dim] (loc, raw scale: tfvae makes
    the diagonal Gaussian with scale softplus(raw scale), as its own prior network does).
  classifier: a Keras 3 model over the family's classifier input (pc_vae: z [B, latent_dim];
    m2: x [B, *data_shape]) -> logits float [B, K] or a `tfd.Categorical` with batch [B] over
    K = config.data.num_classes classes.

A config may name the encoder and decoder by factory instead (tfvae/network_factories.py).

A run stores each part's Keras serialization (keras.saving.serialize_keras_object, JSON) in
WORKDIR/networks/<part>.json and its weights in the checkpoints. Loading deserializes them with
safe_mode=True (no lambda or other code is run from the run folder; nothing is unpickled): a
custom layer or model class must be registered with keras.saving.register_keras_serializable in
a module the loading process has imported.
"""

import dataclasses
import json
import os
import re

import keras

from tfvae import atomic
from tfvae.errors import ConfigError

NETWORKS_DIRNAME = "networks"
PARTS = ("encoder", "decoder", "likelihood", "prior", "classifier")


class NetworkError(ConfigError):
  """A user network that does not fit the data or the model, or cannot be stored."""


@dataclasses.dataclass(frozen=True)
class Accepts:
  """The user networks a family takes and what they are called on: what its config's
  `accepts()` returns (tfvae/models/base.py ModelConfig).

  parts: the names (of PARTS) it takes; () (the default): it builds all its own networks.
  decoder_input: what the decoder is called on, these joined on the last axis in this order:
    "z" (the code), "z1" and "z2" (hvae's levels), each [latent_dim]; "y_onehot" [num_classes];
    "c" (cvae's condition, [C], C = `ModelConfig.condition_dim`).
  classifier_input: "z" (the code, [latent_dim]) or "x" (an example, data_shape).
  prior_input: "" (the prior is p(z), its call() takes no argument) or "c" (it is p(z|c),
    called on the condition c [B, C]: cvae).
  features_only: why the encoder must return features [B, F] rather than a distribution
    (tfvae's head needs them), or "" where q(z|x) itself is welcome.
  not_taken: (part, why) pairs for the parts the family takes only with other settings (cvae's
    prior with --conditional_prior=standard); a given one is refused with "<part>: <why>.".
  """
  parts: tuple[str, ...] = ()
  decoder_input: tuple[str, ...] = ("z",)
  classifier_input: str = "z"
  prior_input: str = ""
  features_only: str = ""
  not_taken: tuple[tuple[str, str], ...] = ()

  @staticmethod
  def input_width(name: str, latent_dim: int, num_classes: int, condition_dim: int) -> int:
    """The width of one decoder input: num_classes for "y_onehot", condition_dim for "c",
    latent_dim for the codes ("z", "z1", "z2")."""
    return {"y_onehot": num_classes, "c": condition_dim}.get(name, latent_dim)

  def decoder_width(self, latent_dim: int, num_classes: int, condition_dim: int) -> int:
    """W, the width of the decoder's input [B, W]: the widths of `decoder_input` summed.

    Args:
      latent_dim: the width of each code (z, z1, z2).
      num_classes: K, the width of y_onehot.
      condition_dim: C, the width of the condition c (the family config's
        `condition_dim(config)`; 0 for families without one).
    """
    return sum(self.input_width(n, latent_dim, num_classes, condition_dim)
               for n in self.decoder_input)


@dataclasses.dataclass(frozen=True)
class Parts:
  """User networks for a model (each None: built from the Config)."""
  encoder: keras.Model | None = None
  decoder: keras.Model | None = None
  likelihood: keras.layers.Layer | None = None
  prior: keras.layers.Layer | None = None
  classifier: keras.Model | None = None

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
