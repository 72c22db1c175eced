"""Offline natural colour images: scikit-learn's two sample photographs cut into patches."""

import numpy as np

from tfvae.errors import DataError


def photo_patches(size: int = 32) -> np.ndarray:
  """Every non-overlapping size x size tile of scikit-learn's two sample photographs
  (`sklearn.datasets.load_sample_images`, 427 x 640 x 3 each, shipped with scikit-learn, so
  offline), in reading order, photograph by photograph.

  Args:
    size: side of a tile in pixels, in [1, 427]; 32 gives 520 tiles, 16 gives 2080.

  Returns:
    uint8 numpy array [N, size, size, 3], pixel values 0..255 (N = the sum over both
    photographs of (427 // size) * (640 // size)). Pass it to `tfvae.data.from_arrays`.

  Raises:
    DataError: if size is not an integer in [1, 427].
  """
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= 427:
    raise DataError(f"photo_patches: size={size!r} must be an integer in [1, 427] (the "
                    "photographs are 427 x 640 pixels).")
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  tiles = []
  for photo in datasets.load_sample_images().images:
    h, w = photo.shape[0] // size * size, photo.shape[1] // size * size
    grid = photo[:h, :w].reshape(h // size, size, w // size, size, 3).swapaxes(1, 2)
    tiles.append(grid.reshape(-1, size, size, 3))
  return np.concatenate(tiles)
