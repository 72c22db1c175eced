"""What a run settles before it trains: the config it records (from the source it trains on and
the data read, --binarization=auto as the run in the workdir was trained) and whether it may take
the workdir (another run's is refused, or deleted with --overwrite: RUN_OUTPUTS)."""

import os
import shutil

from absl import logging

from tfvae import config as config_lib
from tfvae import config_io
from tfvae import data as data_lib
from tfvae import sections
from tfvae import user_networks
from tfvae import workdir as workdir_lib
from tfvae.training import checkpoints

# What a run writes into its workdir (removed by --overwrite).
RUN_OUTPUTS = ("config.json", "ckpt", "tensorboard", "export", "eval.json", "figures",
               user_networks.NETWORKS_DIRNAME, "sampler")  # sampler: tfvae/samplers


def delete_run(workdir):
  for entry in os.listdir(workdir):
    if entry in RUN_OUTPUTS or workdir_lib.own_export("export", entry):
      path = os.path.join(workdir, entry)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)


def check_workdir(config, workdir, overwrite):
  """Refuses (or with overwrite deletes) a run with another config. Writes nothing else:
  config.json is written once the checkpoints restored into this config. A link `export` that
  tfvae did not make is refused (errors.ForeignLink) before anything runs."""
  workdir_lib.export_target(os.path.join(workdir, "export"))
  if os.path.exists(os.path.join(workdir, config_io.CONFIG_FILENAME)):
    try:
      config_io.check_resumable(config_io.load(workdir), config)
    except config_lib.ConfigError:
      if not overwrite:
        raise
      logging.warning("--overwrite: deleting the run in %s", workdir)
      delete_run(workdir)
  elif overwrite and checkpoints.on_disk(os.path.join(workdir, "ckpt")):
    logging.warning("--overwrite: deleting the checkpoints in %s (no config.json)", workdir)
    delete_run(workdir)


def with_source(config, source):
  """`config` naming where `source` came from: its origin as the dataset, and the options it was
  read with (Source.reader_options: image_size, max_value, label_column, condition_columns),
  so that every later command reads the origin as training did. A reader option the config sets
  otherwise is replaced, with a warning (the source is what the run trains on); one the source
  was not read with (from_arrays: none; a folder: image_size only) is reset to its default, with
  a warning that it has no effect (e.g. --condition_columns with arrays: give
  from_arrays(conditions=))."""
  defaults = sections.DataConfig()
  options = dict(source.reader_options)
  for name in config_io.READER_OPTIONS:
    given, default = getattr(config.data, name), getattr(defaults, name)
    if name not in options:
      options[name] = default
      if given != default:
        logging.warning("--%s=%s has no effect on %s (not read with it): recording the "
                        "default.", name, given, source.origin)
    elif given not in (default, options[name]):
      logging.warning("--%s=%s is not how %s was read (%s=%r): recording the source's.", name,
                      given, source.origin, name, options[name])
  return config.replace(**{**options, "dataset": source.origin})


def auto_as_in_workdir(config, workdir):
  """`config`, its --binarization=auto replaced by the binarization of the run in `workdir`
  when that run would otherwise resume (e.g. a config.json written when the default was
  dynamic); one log line says so."""
  if config.data.binarization != "auto":
    return config
  try:
    saved = config_io.load(workdir)
    resumed = config.replace(**{"binarization": saved.data.binarization})
    config_io.check_resumable(saved, resumed)
  except (FileNotFoundError, config_lib.ConfigError):
    return config
  logging.info("--binarization=auto: %s (as the run in %s was trained; set --binarization to "
               "train another run).", resumed.data.binarization, workdir)
  return resumed


def resolve(config, data):
  """`config` with the fields resolved from the data it trains on (Config.RESOLVED), and
  --binarization=auto replaced by what it picked for them (data.binarization), so that
  config.json records it and a resume compares equal.

  Args:
    config: Config.
    data: tfvae.data.Data built for it.
  """
  config = config.replace(**{"image_shape": data.image_shape,
                                        "binarization": data.binarization,  # auto resolved
                                        "pixel_levels": data.max_value + 1,
                                        "num_classes": data.num_classes,
                                        "condition_dim": data.condition_dim,
                                        "data_fingerprint": data.fingerprint,
                                        "feature_mean": data.feature_mean,
                                        "feature_scale": data.feature_scale})
  return config.replace(**{"labeled_examples": len(data_lib.labeled_indices(data, config))})
