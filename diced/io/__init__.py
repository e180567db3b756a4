"""Bring volumes into diced and out again, streamed in chunk-aligned slabs.

:func:`import_array` reads a directory or glob of TIFF/PNG slices, a 3-D or multi-page
TIFF, an HDF5 dataset, a zarr (v2 or v3) or N5 array, or a ``.npy`` file into an array of
an open version; :func:`export_array` writes an array (or a box of it) of any version to a
TIFF stack, one TIFF, HDF5 or zarr v3. Both keep a few slabs in memory whatever the
volume's size and show a progress bar on a terminal. The format readers and writers need
the ``io`` extra: ``pip install 'diced[io]'``. See ``docs/io.md``.
"""

from __future__ import annotations

from diced.io.destination import Destination
from diced.io.formats import DESTINATIONS, open_destination, open_source
from diced.io.source import ArraySource, Source
from diced.io.transfer import export_array, import_array

__all__ = ["DESTINATIONS", "ArraySource", "Destination", "Source", "export_array",
           "import_array", "open_destination", "open_source"]
