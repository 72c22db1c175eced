"""Data: a dataset from a name, files or arrays (a Source), its in-memory splits (Data) and its batches."""

from tfvae.data.dataset import balanced_subset
from tfvae.data.dataset import Data
from tfvae.data.dataset import DataError
from tfvae.data.binarization import fixed_train
from tfvae.data.dataset import labeled_indices
from tfvae.data.dataset import load
from tfvae.data.dataset import Split
from tfvae.data.pipeline import eval_dataset
from tfvae.data.pipeline import steps_per_epoch
from tfvae.data.pipeline import train_dataset
from tfvae.data.pipeline import TrainBatches
from tfvae.data.arrays import from_arrays
from tfvae.data.arrays import IN_MEMORY
from tfvae.data.arrays import Source
from tfvae.data.dataset import build
from tfvae.data.dataset import read
from tfvae.data.files import from_directory
from tfvae.data.files import from_file
from tfvae.data.photos import photo_patches
