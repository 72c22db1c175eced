"""The bridge between absl flags and the flag dataclasses (Config; TuneSettings for the search).

`define_flags(flag_values, cls)` defines one absl flag per field from the field's metadata (its
help; its choices), and `from_flags(flag_values, cls)` builds the dataclass back from the parsed
flags. A Config's flags are flat: those of its shared sections, --model, and the knobs of every
family (tfvae.config.flag_fields), so every flagfile names its flags as before the sections.
Only entry points call these; library code only ever sees the dataclass.
"""

import dataclasses
import typing

from absl import flags
from absl import logging

from tfvae import config as config_lib
from tfvae import config_fields
from tfvae import errors


def _fields(cls):
  """[(name, Field, type)] of the flags of flag dataclass `cls`."""
  if cls is config_lib.Config:
    return [(name, f, _TYPES.get(f.type, f.type)) for name, f in config_lib.flag_fields()]
  hints = typing.get_type_hints(cls)
  return [(f.name, f, hints[f.name]) for f in dataclasses.fields(cls)
          if f.metadata["role"] != config_fields.RESOLVED]


# A field's type as written in its class (a string where the module postpones annotations).
_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "tuple[int, ...]": tuple[int, ...]}


def define_flags(flag_values=None, cls=None):
  """Defines one absl flag per field of flag dataclass `cls` (default Config) from its metadata
  (help, choices), but resolved fields. Call once, from an entry point."""
  cls, fv = cls or config_lib.Config, flags.FLAGS if flag_values is None else flag_values
  for name, f, kind in _fields(cls):
    default, meta = f.default, f.metadata
    choices = meta.get("choices")
    if name == "model" and cls is config_lib.Config:
      choices = tuple(config_lib.families())
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
  """Builds flag dataclass `cls` (default Config) from parsed absl flags. For a Config, a knob
  of another family than --model's that was set (`--model=ae --beta=4`) has no effect: it is
  left out with a warning.

  Raises:
    ConfigError: naming the flag at fault, for a value that is not valid.
  """
  cls = cls or config_lib.Config
  values = {}
  for name, f, _ in _fields(cls):
    value = flag_values[name].value
    if isinstance(f.default, tuple):
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        raise errors.ConfigError(f"--{name}={','.join(value)} must be comma-separated "
                                 "integers.") from None
    values[name] = value
  if cls is not config_lib.Config:
    return cls(**values)
  family = values["model"]
  reads = {f.name for cls in (*config_lib.SHARED.values(), config_lib.families()[family])
           for f in dataclasses.fields(cls)} | {"model"}
  for name, value in values.items():
    if name not in reads and flag_values[name].present:
      shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
      logging.warning("--%s=%s has no effect with --model=%s: ignored (the run is recorded "
                      "without it).", name, shown, family)
  return config_lib.Config(**{k: v for k, v in values.items() if k in reads})
