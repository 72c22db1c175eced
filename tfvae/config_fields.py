"""The fields of tfvae's flag dataclasses (the Config's sections, each family's config,
TuneSettings): `field` (default, role, help, choices), the roles, and the type and choice checks
every one of them runs when built. Pure Python.

A field's name is its flag name, its Python argument and its config.json key. Its role says what
may change where: resuming a run may change SCHEDULE, SAFEGUARD, NUMERICS and EXECUTION fields
(`RESUMABLE_ROLES`); continuing a search may change EXECUTION fields only (`CONTINUABLE_ROLES`);
the fields that define a run's numbers are those of `RESULT_ROLES`; RESOLVED fields are set from
the data, not by flags.
"""

import dataclasses
import math
import numbers
import typing

from tfvae.errors import ConfigError

DATA = "data"
MODEL = "model"
OPTIMIZATION = "optimization"
SCHEDULE = "schedule"
SAFEGUARD = "safeguard"
NUMERICS = "numerics"
EXECUTION = "execution"
RESOLVED = "resolved"
ROLES = (DATA, MODEL, OPTIMIZATION, SCHEDULE, SAFEGUARD, NUMERICS, EXECUTION, RESOLVED)
RESUMABLE_ROLES = frozenset({SCHEDULE, SAFEGUARD, NUMERICS, EXECUTION})
CONTINUABLE_ROLES = frozenset({EXECUTION})
RESULT_ROLES = frozenset({DATA, MODEL, OPTIMIZATION, SCHEDULE})

# Seeds become int32 tensors (TF's stateless random ops) and numpy seeds (>= 0).
MAX_SEED = 2**31 - 1
# What a string field holds, where a number is a likely mistake.
_STRING_HINTS = {"num_labels": " ('all' or a positive integer written as a string: '100')"}


def field(default, role, help_text, choices=None):
  """A field of a flag dataclass: its default, role (ROLES), help text and, for an enum flag,
  its choices (a tuple of strings)."""
  return dataclasses.field(default=default, metadata={
      "role": role, "help": help_text, "choices": tuple(choices or ())})


def _typed(name, kind, value):
  """`value` as a field of type `kind` (int, float, str, bool, tuple[int|float, ...]) takes it:
  numpy numbers become Python's, a list a tuple; anything else of another type is refused."""
  if kind is bool:
    if isinstance(value, bool):
      return value
    raise ConfigError(f"--{name}={value!r} must be true or false, not {type(value).__name__}.")
  if kind is int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
      return int(value)
    raise ConfigError(f"--{name}={value!r} must be an integer, not {type(value).__name__}.")
  if kind is float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
      if not math.isfinite(value):
        raise ConfigError(f"--{name}={value!r} must be a finite number.")
      return value if isinstance(value, (int, float)) else float(value)
    raise ConfigError(f"--{name}={value!r} must be a number, not {type(value).__name__}.")
  if kind is str:
    if isinstance(value, str):
      return value
    raise ConfigError(f"--{name}={value!r} must be a string{_STRING_HINTS.get(name, '')}, not "
                      f"{type(value).__name__}.")
  element = kind.__args__[0]  # tuple[int, ...] or tuple[float, ...]
  if not isinstance(value, (tuple, list)):
    raise ConfigError(f"--{name}={value!r} must be a list of {element.__name__}s, not "
                      f"{type(value).__name__}.")
  try:
    return tuple(_typed(name, element, v) for v in value)
  except ConfigError:
    raise ConfigError(f"--{name}={value!r} must be a list of "
                      f"{'integers' if element is int else 'finite numbers'}.") from None


def types(cls):
  """{field name: type} of flag dataclass `cls` (its annotations resolved)."""
  return typing.get_type_hints(cls)


def normalize(obj):
  """Checks the type of each field of flag dataclass `obj` and its enum fields' choices; stores
  a list as a tuple and a numpy number as Python's (call from `__post_init__`).

  Raises:
    ConfigError: naming the field as a flag, for a value of another type (`latent_dim="16"`,
      `"latent_dim": 16.5` in config.json), a non-finite float (`--learning_rate=nan`) or a
      value outside the field's choices.
  """
  kinds = types(type(obj))
  for f in dataclasses.fields(obj):
    value = getattr(obj, f.name)
    new = _typed(f.name, kinds[f.name], value)
    if new is not value:
      object.__setattr__(obj, f.name, new)  # frozen: set once, before anyone sees it
    choices = f.metadata.get("choices")
    if choices and new not in choices:
      raise ConfigError(f"--{f.name}={new!r} is not one of {', '.join(choices)}.")


def check_at_least(obj, minimum, *names):
  """Raises ConfigError naming the first field of `names` of `obj` below `minimum`."""
  for name in names:
    value = getattr(obj, name)
    if value < minimum:
      what = "a positive integer" if minimum == 1 else f">= {minimum}"
      raise ConfigError(f"--{name}={value} must be {what}.")


def check_seed(obj, name):
  """Raises ConfigError unless field `name` of `obj` is a seed in 0..MAX_SEED."""
  if not 0 <= getattr(obj, name) <= MAX_SEED:
    raise ConfigError(f"--{name}={getattr(obj, name)} must be in 0..{MAX_SEED} (2**31 - 1).")
