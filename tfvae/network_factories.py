"""Networks named by the config instead of passed to `tfvae.fit`: --encoder and --decoder =
module.path:function, a factory f(data_shape, latent_dim) -> keras.Model recorded in
config.json (ModelConfig.encoder/decoder).

`from_config` imports the module and calls the function when a run trains or resumes, and the
Keras model it returns is used exactly as a network passed to tfvae.fit (checked, stored and
reconciled by tfvae/user_networks.py); loading a run imports the module (so that its registered
classes deserialize) and rebuilds the stored network, without calling the factory.
"""

import importlib
import os
import re

import keras

from tfvae import keras_scope
from tfvae import user_networks
from tfvae.errors import ConfigError
from tfvae.user_networks import NetworkError, Parts

# The parts a config can name by factory (--encoder, --decoder: ModelConfig fields).
FACTORY_PARTS = ("encoder", "decoder")
_FACTORY_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def check_factory_name(name: str, value: str, model_config) -> None:
  """Checks the form of a factory flag's value (ModelConfig.check calls it).

  Args:
    name: the flag, "encoder" or "decoder".
    value: "" (tfvae builds the network) or "module.path:function".
    model_config: the family's config (tfvae/models/base.py ModelConfig); its `accepts()` says
      which user networks the family takes.

  Raises:
    ConfigError: one line naming the flag, for another form or a family that takes no such
      network.
  """
  if not value:
    return
  if not _FACTORY_NAME.match(value):
    raise ConfigError(f"--{name}={value!r} must be module.path:function (a factory "
                      f"f(data_shape, latent_dim) -> keras.Model), or empty.")
  takes = model_config.accepts().parts
  if name not in takes:
    raise ConfigError(f"--{name}={value}: --model={model_config.family} "
                      + (f"takes no {name} network (it takes {', '.join(takes)})." if takes
                         else "builds its own networks."))


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


def from_config(config, parts: Parts | None = None, workdir: str | None = None) -> Parts:
  """The user networks of a run: `parts`, with the encoder and decoder that the config names
  by factory (--encoder/--decoder=module.path:function, ModelConfig) added. The one place a
  factory is resolved: training (`tfvae.fit`, python -m tfvae.train, resume) and loading
  (tfvae/loading.py) call it.

  Training (workdir None): each factory's module is imported and the function is called with
  (data_shape, latent_dim): config.data.image_shape as a tuple ((H, W, C) or (D,)) and
  config.model.latent_dim, under the run's dtype policy and --seed (so its initial weights are
  the run's); the Keras model it returns is used exactly as a network passed to `tfvae.fit`
  (checked, stored in WORKDIR/networks, compared with the stored one on resume). A decoder
  that reads more than z (hvae: [z1, z2], m2: [z, y_onehot], cvae: [z, c];
  docs/own_networks.md) is still
  called with latent_dim: build it without a fixed input width (Keras builds it on its first
  call), or of the width the family names.
  Loading (workdir the run): the module of each factory whose part is not given is imported,
  which registers the classes its network is made of; the network itself is then rebuilt from
  WORKDIR/networks (`user_networks.reconcile`): the factory is not called, and nothing in the
  run folder runs.

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
      stored = os.path.join(user_networks.folder(workdir), f"{name}.json")
      if not os.path.exists(stored):
        raise NetworkError(f"--{name}={value}: {user_networks.folder(workdir)} has no "
                           f"{name}.json: the run was not stored whole (train it again).")
  return Parts(**{**parts.given(), **built})


def require_named(config, parts: Parts | None) -> None:
  """Raises NetworkError if the config names a factory whose network is not among `parts` (a
  model would otherwise be built with tfvae's own network in its place): resolve them with
  `from_config`."""
  for name in FACTORY_PARTS:
    if getattr(config.model, name, "") and (parts is None or getattr(parts, name) is None):
      raise NetworkError(f"--{name}={getattr(config.model, name)}: the config names a factory, "
                         "but no network was given: build its parts with "
                         "tfvae.network_factories.from_config(config).")
