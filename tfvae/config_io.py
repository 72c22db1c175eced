"""A run's WORKDIR/config.json: writing it, reading it (old flat files migrate: Config.from_dict),
and what may change when a run resumes (`check_resumable`)."""

import json
import os

from tfvae import atomic
from tfvae.config import Config, RESUMABLE_ROLES, differences
from tfvae.errors import ConfigError

CONFIG_FILENAME = "config.json"


def save(config, workdir):
  """Writes `config` to WORKDIR/config.json (atomically: write to a temp name, then rename)."""
  os.makedirs(workdir, exist_ok=True)
  atomic.write_json(os.path.join(workdir, CONFIG_FILENAME), config.to_dict(), indent=2,
                    sort_keys=True, allow_nan=False)  # (a Config's floats are finite)


def load(workdir):
  """Reads WORKDIR/config.json.

  Raises:
    FileNotFoundError: if the workdir holds no config.json (no run was started there).
    ConfigError: if config.json does not parse or does not hold a valid Config.
  """
  path = os.path.join(workdir, CONFIG_FILENAME)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: is --workdir={workdir} a tfvae run?")
  try:
    with open(path) as f:
      values = json.load(f)
    if not isinstance(values, dict):
      raise ValueError(f"a JSON {type(values).__name__}, not an object")
    return Config.from_dict(values)
  except (ValueError, TypeError, UnicodeDecodeError) as e:
    why = (str(e).splitlines() or [""])[0][:200].rstrip(".")
    raise ConfigError(
        f"{path} is not a tfvae config ({type(e).__name__}: {why}): restore it from a copy, or "
        "start the run over with --overwrite (which deletes it).") from None


# The options of the readers of --dataset (tfvae.data.from_directory, from_file), recorded with
# the dataset so that later commands read it alike (the reader_options field of
# tfvae.data.arrays.Source).
READER_OPTIONS = ("image_size", "max_value", "label_column", "condition_columns")


def check_resumable(saved, new):
  """Raises ConfigError naming the fields where `new` would not continue the run `saved`:
  fields outside RESUMABLE_ROLES that differ, or other data (their fingerprints differ).
  Knobs the run does not read are not compared (Config.normalized), nor READER_OPTIONS when
  both read the same data (same fingerprint and pixel levels: a run whose config.json predates
  their recording resumes)."""
  saved, new = saved.normalized()[0], new.normalized()[0]
  old, now = saved.data, new.data
  readers = [f"--{n}={getattr(now, n)!r} now, {getattr(old, n)!r} in the workdir"
             for n in READER_OPTIONS if getattr(now, n) != getattr(old, n)]
  if old.data_fingerprint and now.data_fingerprint and (
      old.data_fingerprint != now.data_fingerprint) and old.dataset == now.dataset:
    raise ConfigError(f"--dataset={now.dataset}: the data differ from those the run in the "
                      f"workdir was trained on ({'; '.join(readers + [''])}now: "
                      f"{now.data_fingerprint}; the run's: {old.data_fingerprint}). Use a new "
                      "--workdir, or --overwrite to delete that run and start over.")
  same_data = (old.data_fingerprint and old.data_fingerprint == now.data_fingerprint
               and old.pixel_levels == now.pixel_levels)
  changed = differences(saved, new, RESUMABLE_ROLES, ignore=READER_OPTIONS if same_data else ())
  if old.image_shape and now.image_shape and old.image_shape != now.image_shape:
    changed.append(("image_shape", old.image_shape, now.image_shape))
  if changed:
    diffs = "; ".join(f"--{n}: {a!r} in the workdir, {b!r} now" for n, a, b in changed)
    raise ConfigError(f"The workdir holds a run with a different config ({diffs}). "
                      "Use a new --workdir, the same flags to resume, or --overwrite to delete "
                      "that run and start over.")
