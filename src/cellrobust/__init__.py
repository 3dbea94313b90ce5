"""cellrobust: how far can a cell-segmentation model be trusted when microscope images degrade?

The package is layered; dependencies point one way::

    data  <-  artefacts  <-  segmenters/models  <-  metrics  <-  sweep  <-  report  <-  cli

Heavy dependencies (torch, matplotlib, dask) are imported by the modules that need them,
never here, so ``import cellrobust`` stays cheap.
"""

__version__ = "0.1.0"

from cellrobust._validation import CellrobustError, DataError, InputError

__all__ = ["__version__", "CellrobustError", "DataError", "InputError"]
