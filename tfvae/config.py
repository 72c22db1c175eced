"""The run configuration: the sections every family shares (tfvae/sections.py: data, training,
execution), the family's own config (tfvae/models/<family>.py: `VAEConfig`, `AEConfig`, ...),
their JSON form (`to_dict`, `from_dict`; the flat form written before the sections migrates)
and what may change when a run resumes (each field's role, `differences`). WORKDIR/config.json
itself is written, read and compared on resume by tfvae/config_io.py.

    tfvae.Config(model=tfvae.models.vae.VAEConfig(latent_dim=8, beta=4),
                 training=tfvae.sections.TrainingConfig(train_steps=500))
    tfvae.Config(latent_dim=8, beta=4, train_steps=500)      # the same, by flag names

Library code reads the sections (`config.data.dataset`, `config.model.latent_dim`,
`config.training.batch_size`); `tfvae.config_flags` makes one flag per field, of the same name.
Each field has a role (tfvae/config_fields.py) from which follows what may change on resume.
"""

import dataclasses
from typing import Any

from tfvae import sections
from tfvae.config_fields import (  # noqa: F401 (the roles, also config.X)
    CONTINUABLE_ROLES, DATA, EXECUTION, MODEL, NUMERICS, OPTIMIZATION, RESOLVED, RESULT_ROLES,
    RESUMABLE_ROLES, ROLES, SAFEGUARD, SCHEDULE, field)
from tfvae.errors import ConfigError

# The sections of a Config other than the family's (config.model), by attribute name.
SHARED = {"data": sections.DataConfig, "training": sections.TrainingConfig,
          "execution": sections.ExecutionConfig}
_SECTION_OF = {f.name: name for name, cls in SHARED.items() for f in dataclasses.fields(cls)}
DEFAULT_FAMILY = "vae"


def families():
  """{family name: its config class} of the model registry (tfvae/models/__init__.py; importing
  it imports TensorFlow, through cli.import_tensorflow: without its native start-up lines)."""
  from tfvae import cli  # pylint: disable=import-outside-toplevel
  cli.import_tensorflow()
  from tfvae import models  # pylint: disable=import-outside-toplevel
  return {name: model.config_class for name, model in models.MODELS.items()}


def _family_config(name):
  known = families()
  if name not in known:
    raise ConfigError(f"--model={name!r} is not one of {', '.join(known)}.")
  return known[name]


@dataclasses.dataclass(frozen=True, init=False)
class Config:
  """Everything that defines a run: `data`, `model` (the family's config, whose `family` is the
  --model name), `training` and `execution`.

  Built from sections, from flag names, or both (flags apply over the sections given):
  `Config(model=VAEConfig(latent_dim=8), train_steps=500)`. `model` may also be a family name,
  `Config(model="ae", latent_dim=8)`.

  Raises:
    ConfigError: naming the flag, for a value that cannot run, an unknown name, or a knob of
      another family (`Config(model="ae", beta=4)`: beta is not an option of --model=ae).
  """
  data: sections.DataConfig
  model: Any  # the family's config: a tfvae.models.base.ModelConfig
  training: sections.TrainingConfig
  execution: sections.ExecutionConfig

  def __init__(self, data=None, model=None, training=None, execution=None, **flags):
    given = {"data": data, "training": training, "execution": execution}
    values = {name: given[name] if given[name] is not None else cls()
              for name, cls in SHARED.items()}
    by_section: dict = {name: {} for name in SHARED}
    family_flags = {}
    for name, value in flags.items():
      if name in _SECTION_OF:
        by_section[_SECTION_OF[name]][name] = value
      else:
        family_flags[name] = value
    for name, changes in by_section.items():
      if changes:
        values[name] = dataclasses.replace(values[name], **changes)
    if isinstance(model, str) or model is None:
      cls, model_values = _family_config(model or DEFAULT_FAMILY), {}
    else:
      cls, model_values = type(model), dataclasses.asdict(model)
    own = {f.name for f in dataclasses.fields(cls)}
    for name in family_flags:
      if name not in own:
        raise ConfigError(_not_an_option(name, cls.family))
    values["model"] = cls(**{**model_values, **family_flags})
    for name, value in values.items():
      object.__setattr__(self, name, value)  # frozen: set once, before anyone sees it
    self.model.check_with(self)

  @property
  def family(self):
    """The model family's name (the --model flag; a key of tfvae.models.MODELS)."""
    return self.model.family

  def replace(self, **flags):
    """A copy with these fields (flag names; `model=` a family name) changed. Changing the
    family keeps the knobs the two families share (latent_dim, the networks, ...)."""
    model = self.model
    family = flags.pop("model", None)
    if family is not None and family != self.family:
      cls = _family_config(family)
      own = {f.name for f in dataclasses.fields(cls)}
      model = cls(**{k: v for k, v in dataclasses.asdict(self.model).items() if k in own})
    return Config(data=self.data, model=model, training=self.training,
                  execution=self.execution, **flags)

  def flat(self):
    """{flag name: value} of every field of every section, with "model" the family's name."""
    return {"model": self.family, **{f.name: getattr(section, f.name)
                                     for section in self.sections()
                                     for f in dataclasses.fields(section)}}

  def sections(self):
    """The four sections: data, model, training, execution."""
    return (self.data, self.model, self.training, self.execution)

  def normalized(self):
    """This config with the knobs the run does not read back at their defaults, and what was
    reset: (Config, messages), one one-line warning per knob reset, naming the flag, its value
    and the flag that makes it have no effect (`--num_flows=3 has no effect with
    --posterior=diagonal`). config.json records the normalized config: what defines the run."""
    config, messages = self, []
    changed = True
    while changed:  # resetting one knob can make another one inactive
      changed = False
      defaults = {f.name: f.default for f in dataclasses.fields(config.model)}
      for name, why in config.model.inactive(config).items():
        value = getattr(config.model, name)
        if value != defaults[name]:
          shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
          messages.append(f"--{name}={shown} has no effect with {why}: ignored (the run is "
                          "recorded without it).")
          config, changed = config.replace(**{name: defaults[name]}), True
    return config, messages

  def to_dict(self):
    """The JSON form: {"data": {...}, "model": {"family": name, ...}, "training": {...},
    "execution": {...}}."""
    return {"data": dataclasses.asdict(self.data),
            "model": {"family": self.family, **dataclasses.asdict(self.model)},
            "training": dataclasses.asdict(self.training),
            "execution": dataclasses.asdict(self.execution)}

  @classmethod
  def from_dict(cls, values):
    """Builds a Config from `to_dict()`'s form, or from the flat form of the config.json files
    written before the sections (`from_flat`); lists become tuples.

    Raises:
      ConfigError: on an unknown key or an invalid value.
    """
    if not isinstance(values.get("model"), dict):
      return from_flat(values)
    unknown = sorted(set(values) - {"model", *SHARED})
    if unknown:
      raise ConfigError(f"Unknown config sections: {', '.join(unknown)}.")
    model = dict(values["model"])
    family = _family_config(model.pop("family", DEFAULT_FAMILY))
    built = {}
    for name, section in (*SHARED.items(), ("model", family)):
      part = model if name == "model" else values.get(name, {})
      if not isinstance(part, dict):
        raise ConfigError(f"The config section {name} is a {type(part).__name__}, not an "
                          "object.")
      extra = sorted(set(part) - {f.name for f in dataclasses.fields(section)})
      if extra:
        raise ConfigError(f"Unknown config keys in {name}: {', '.join(extra)}.")
      built[name] = section(**part)
    return cls(**built)


def _not_an_option(name, family):
  owners = [n for n, c in families().items() if name in {f.name for f in dataclasses.fields(c)}]
  if owners:
    return (f"--{name} is not an option of --model={family} (it is one of --model="
            f"{', '.join(owners)}).")
  return f"Unknown config key: {name}."


def from_flat(values):
  """The Config of a flat dict of flag names (the config.json of tfvae before the sections):
  the knobs of other families than values["model"] are dropped (those files recorded them at
  their defaults).

  Raises:
    ConfigError: on an unknown key or an invalid value.
  """
  family = values.get("model", DEFAULT_FAMILY)
  if not isinstance(family, str):
    raise ConfigError(f"--model={family!r} must be a string.")
  own = {f.name for f in dataclasses.fields(_family_config(family))}
  others = {f.name for c in families().values() for f in dataclasses.fields(c)}
  unknown = sorted(set(values) - set(_SECTION_OF) - others - {"model"})
  if unknown:
    raise ConfigError(f"Unknown config keys: {', '.join(unknown)}.")
  kept = {k: v for k, v in values.items() if k in _SECTION_OF or k in own}
  return Config(model=family, **kept)


def _model_field():
  @dataclasses.dataclass
  class _Model:
    model: str = field(
        DEFAULT_FAMILY, MODEL,
        "Model family (tfvae/models/, one file each): vae (beta > 1: beta-VAE); hvae (two "
        "latent layers z2 -> z1 -> x, q(z1|x, z2) q(z2|x), Tomczak & Welling 2018; "
        "--latent_dim each); ae, sparse_ae, denoising_ae, contractive_ae (deterministic "
        "autoencoders); m2 (Kingma et al. 2014) and pc_vae (Hope et al. 2020), "
        "semi-supervised with --num_labels; cvae (Sohn et al. 2015), generates given the "
        "class. Each family reads its own knobs.")
  return dataclasses.fields(_Model)[0]


MODEL_FLAG = _model_field()


def flag_fields():
  """[(name, dataclasses.Field)] of every flag of a Config: the shared sections' fields (but
  RESOLVED ones), "model", then each family's knobs once (the first family that declares a name
  gives its default and help)."""
  out = [(f.name, f) for cls in SHARED.values() for f in dataclasses.fields(cls)
         if f.metadata["role"] != RESOLVED]
  out.append(("model", MODEL_FLAG))
  seen = set()
  for cls in families().values():
    for f in dataclasses.fields(cls):
      if f.name not in seen:
        seen.add(f.name)
        out.append((f.name, f))
  return out


def role(name):
  """The role (config_fields.ROLES) of flag or field `name` of a Config.

  Raises:
    KeyError: if no section or family has a field `name`.
  """
  if name == "model":
    return MODEL
  for cls in (*SHARED.values(), *families().values()):
    for f in dataclasses.fields(cls):
      if f.name == name:
        return f.metadata["role"]
  raise KeyError(name)


def _roles(obj):
  """{name: (value, role)} of a Config's fields (its family as "model") or of a flag
  dataclass's (TuneSettings)."""
  if isinstance(obj, Config):
    return {"model": (obj.family, MODEL), **{
        f.name: (getattr(s, f.name), f.metadata["role"])
        for s in obj.sections() for f in dataclasses.fields(s)}}
  return {f.name: (getattr(obj, f.name), f.metadata["role"]) for f in dataclasses.fields(obj)}


def names_with_roles(roles, config=None):
  """The field names of `config` (default: a default Config) whose role is in `roles`."""
  return tuple(n for n, (_, r) in _roles(config or Config()).items() if r in roles)


def differences(saved, new, may_change, ignore=()):
  """[(name, saved value, new value)] of the fields of two Configs (or two TuneSettings) that
  differ and may not: those whose role is not in `may_change` (resolved fields are never
  compared), except the names in `ignore`. Configs of two families differ in "model" (their
  own knobs are not compared)."""
  old, now = _roles(saved), _roles(new)
  return [(name, value, now[name][0]) for name, (value, r) in old.items()
          if name in now and r not in may_change | {RESOLVED} and name not in ignore
          and now[name][0] != value]


DISCRETE_LIKELIHOODS = ("bernoulli",)


def likelihood_mismatch(config):
  """A one-line warning when the likelihood does not match the pixels, else None.

  Bernoulli is a distribution over {0, 1}: on gray levels (--binarization=none/dequantize) its
  log_prob is a cross-entropy, not a log-likelihood. A density (normal, laplace, ...) on binary
  pixels can grow without bound, so the number is not a log-likelihood either.
  """
  data, likelihood = config.data, config.model.likelihood
  if len(data.image_shape) == 1 or data.binarization == "auto":
    return None  # vectors: build() checks the features; auto: not resolved against data yet
  binary = data.binarization in ("static", "dynamic")
  if likelihood in DISCRETE_LIKELIHOODS and not binary:
    return (f"--likelihood={likelihood} on gray-level pixels (--binarization="
            f"{data.binarization}): its log_prob is a cross-entropy, not a log-likelihood, so "
            "elbo/nll are not bounds on log p(x); for continuous pixels use "
            "--likelihood=continuous_bernoulli (or normal), for binary-like ones "
            "--binarization=dynamic (docs/data.md).")
  if likelihood not in DISCRETE_LIKELIHOODS and binary:
    return (f"--likelihood={likelihood} is a density but the pixels are binary "
            f"(--binarization={data.binarization}): the density of {{0, 1}} values can grow "
            "without bound, so elbo/nll are not log-likelihoods: set --binarization=none (or "
            "auto) to model the gray levels with this density, or --likelihood=bernoulli for "
            "binary pixels.")
  return None
