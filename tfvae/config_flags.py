"""The bridge between absl flags and the flag dataclasses (Config; TuneSettings for the search).

`define_flags(flag_values, cls)` defines one absl flag per field of `cls` from the field's
metadata (its help; its choices from `config.CHOICES`), and `from_flags(flag_values, cls)` builds
the dataclass back from the parsed flags. Only entry points call these; library code only ever
sees the dataclass.
"""

import dataclasses
import typing

from absl import flags

from tfvae import config as config_lib
from tfvae import errors


def define_flags(flag_values=None, cls=None):
  """Defines one absl flag per field of flag dataclass `cls` (default Config) from its metadata
  (help; choices from config.CHOICES for Config), but resolved fields. Call once, from an entry point."""
  cls, fv = cls or config_lib.Config, flags.FLAGS if flag_values is None else flag_values
  hints = typing.get_type_hints(cls)
  for f in dataclasses.fields(cls):
    name, default, kind, meta = f.name, f.default, hints[f.name], f.metadata
    if meta["role"] == config_lib.RESOLVED:
      continue
    choices = config_lib.CHOICES.get(name) if cls is config_lib.Config else None
    if choices:
      flags.DEFINE_enum(name, default, choices, meta["help"], flag_values=fv)
    elif kind == bool:
      flags.DEFINE_bool(name, default, meta["help"], flag_values=fv)
    elif kind == int:
      flags.DEFINE_integer(name, default, meta["help"], flag_values=fv)
    elif kind == float:
      flags.DEFINE_float(name, default, meta["help"], flag_values=fv)
    elif kind == str:
      flags.DEFINE_string(name, default, meta["help"], flag_values=fv)
    else:  # tuple[int, ...]
      flags.DEFINE_list(name, [str(v) for v in default], meta["help"], flag_values=fv)


def from_flags(flag_values, cls=None):
  """Builds flag dataclass `cls` (default Config) from parsed absl flags.

  Raises:
    ConfigError: naming the flag at fault, for a value that is not valid.
  """
  cls = cls or config_lib.Config
  values = {}
  for f in dataclasses.fields(cls):
    if f.metadata["role"] == config_lib.RESOLVED:
      continue
    value = flag_values[f.name].value
    if isinstance(f.default, tuple):
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        raise errors.ConfigError(f"--{f.name}={','.join(value)} must be comma-separated "
                          "integers.") from None
    values[f.name] = value
  return cls(**values)
