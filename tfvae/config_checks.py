"""The checks of a Config (tfvae/config.py): each field's type, then its value, then the rules
between options. Pure Python, run by `Config.__post_init__`, so a Config built from flags, from
Python or from a config.json is checked the same way.

Every error is a ConfigError that names the field as its flag, `--name=value`: the name is also
the Config argument and the config.json key.
"""

import dataclasses
import math
import numbers

from tfvae import options
from tfvae.errors import ConfigError

# Seeds become int32 tensors (TF's stateless random ops) and numpy seeds (>= 0).
MAX_SEED = 2**31 - 1
# What a string field holds, where a number is a likely mistake.
_STRING_HINTS = {"num_labels": " ('all' or a positive integer written as a string: '100')"}


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


def typed(config):
  """Checks the type of each field of `config` (a Config).

  Returns:
    {name: value} of the fields whose value is to be stored converted to the field's type
    (a list as a tuple, a numpy number as Python's).

  Raises:
    ConfigError: naming the field, for a value of another type (`latent_dim="16"`,
      `"latent_dim": 16.5` in config.json) or a non-finite float (`--learning_rate=nan`).
  """
  converted = {}
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    new = _typed(f.name, f.type, value)
    if new is not value:
      converted[f.name] = new
  return converted


def check(config, choices):
  """Checks the values of `config` (a Config whose types `typed` checked) and the rules between
  its options; `choices` maps an enum field to its values (config.CHOICES).

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  c = config
  if c.num_labels != "all" and not (c.num_labels.isdigit() and int(c.num_labels) > 0):
    raise ConfigError(f"--num_labels={c.num_labels!r} must be 'all' or a positive integer.")
  for name in ("seed", "label_seed"):
    if not 0 <= getattr(c, name) <= MAX_SEED:
      raise ConfigError(f"--{name}={getattr(c, name)} must be in 0..{MAX_SEED} (2**31 - 1).")
  # Checks between options apply to the options this run reads (tfvae/options.py).
  if options.reads(c, "labeled_batch_size") and not 0 < c.labeled_batch_size < c.batch_size:
    raise ConfigError(f"--labeled_batch_size={c.labeled_batch_size} must be in [1, "
                      f"--batch_size={c.batch_size}) for --model={c.model}.")
  for name in ("classifier_weight", "prediction_weight"):
    if getattr(c, name) < 0:
      raise ConfigError(f"--{name}={getattr(c, name)} must be >= 0.")
  for name, values in choices.items():  # (absl checks them too, before this)
    if getattr(c, name) not in values:
      raise ConfigError(f"--{name}={getattr(c, name)!r} is not one of {', '.join(values)}.")
  positive = ("latent_dim", "num_samples", "num_flows", "num_pseudo_inputs",
              "num_mixture_components", "batch_size", "eval_batch_size", "steps_per_loop",
              "checkpoint_every", "num_cpu_devices", "max_consecutive_skips")
  for name in positive:
    if getattr(c, name) < 1:
      raise ConfigError(f"--{name}={getattr(c, name)} must be a positive integer.")
  for name in ("epochs", "train_steps", "eval_every", "eval_importance_samples",
               "early_stopping_patience"):
    if getattr(c, name) < 0:
      raise ConfigError(f"--{name}={getattr(c, name)} must be >= 0.")
  if c.epochs == 0 and c.train_steps == 0:
    raise ConfigError("Set --epochs or --train_steps to a positive number.")
  for name in ("beta", "free_bits", "sparsity_weight", "contraction_weight", "corruption_level",
               "warmup_steps"):
    if getattr(c, name) < 0:
      raise ConfigError(f"--{name}={getattr(c, name)} must be >= 0.")
  if options.reads(c, "warmup_steps") and c.warmup_steps < 1:
    raise ConfigError(f"--beta_schedule={c.beta_schedule} needs --warmup_steps >= 1.")
  if c.num_cycles < 1:
    raise ConfigError(f"--num_cycles={c.num_cycles} must be a positive integer.")
  if options.reads(c, "corruption") and c.corruption == "masking" and c.corruption_level >= 1:
    raise ConfigError(f"--corruption_level={c.corruption_level} must be in [0, 1) for "
                      "--corruption=masking (it is the probability of masking a pixel).")
  if options.reads(c, "training_objective") and c.training_objective == "iwae_dreg" and (
      c.posterior != "diagonal" or c.prior == "vampprior"):
    raise ConfigError("--training_objective=iwae_dreg needs --posterior=diagonal and a prior "
                      f"that does not share the encoder (got --posterior={c.posterior}, "
                      f"--prior={c.prior}); use --training_objective=iwae.")
  if c.model == "hvae" and (c.posterior != "diagonal" or c.training_objective == "iwae_dreg"):
    raise ConfigError("--model=hvae supports --posterior=diagonal and --training_objective="
                      "elbo or iwae only.")
  if options.reads(c, "free_bits") and c.free_bits > 0 and (
      c.model == "hvae" or c.prior != "standard_normal" or c.posterior != "diagonal"):
    raise ConfigError(f"--free_bits={c.free_bits} needs the analytic per-dimension KL: "
                      "--model=vae with --prior=standard_normal and --posterior=diagonal.")
  if c.clip_grad_norm < 0:
    raise ConfigError(f"--clip_grad_norm={c.clip_grad_norm} must be >= 0.")
  if c.learning_rate <= 0:
    raise ConfigError(f"--learning_rate={c.learning_rate} must be > 0.")
  if not 0 < c.test_fraction < 1:
    raise ConfigError(f"--test_fraction={c.test_fraction} must be in (0, 1).")
  if c.image_size and (len(c.image_size) != 2 or min(c.image_size) < 1):
    raise ConfigError(f"--image_size={','.join(map(str, c.image_size))} must be two "
                      "positive integers H,W.")
  if not 0 <= c.max_value <= 255:
    raise ConfigError(f"--max_value={c.max_value} must be in 1..255 (0: 255).")
  if not 0 < c.validation_fraction < 1:
    raise ConfigError(f"--validation_fraction={c.validation_fraction} must be in (0, 1).")
  for name in ("hidden_sizes", "conv_filters"):
    sizes = getattr(c, name)
    if not sizes or any(s < 1 for s in sizes):
      raise ConfigError(f"--{name}={','.join(map(str, sizes))} must be positive integers.")
