"""Data: samples, readers for the formats the field uses, patches, splits, the simulator."""

from cellrobust.data.sample import Sample

__all__ = ["Sample"]
