"""Two real photographs for qualitative figures, from the copies scikit-learn installs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxadv.data.saliency._record import check_size


def sample_photographs(size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The two sample photographs of ``sklearn.datasets.load_sample_images``.

    ``"china"`` (a temple) and ``"flower"``, both 427×640 (h×w) RGB JPEGs shipped inside
    scikit-learn, so nothing is downloaded. They have no eye-tracking data: use them to show what
    a model predicts, or how an attack moves its map, on natural images.

    Args:
      size: ``(h, w)`` to resize to with Pillow's bilinear filter (antialiased when shrinking);
        ``None`` keeps 427×640.

    Returns:
      ``{"china": float32[h, w, 3], "flower": float32[h, w, 3]}``, values in ``[0, 1]``.

    Raises:
      ValueError: if ``size`` is not a pair of positive integers.
    """
    size = None if size is None else check_size(size)
    from PIL import Image
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photographs = {}
    for path, pixels in zip(bunch.filenames, bunch.images):
        if size is not None:
            pixels = np.asarray(
                Image.fromarray(pixels).resize(size[::-1], Image.Resampling.BILINEAR)
            )
        photographs[Path(path).stem] = np.divide(pixels, np.float32(255), dtype=np.float32)
    return photographs
