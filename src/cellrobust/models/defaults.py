"""Named constants of U-Net inference, importable without torch.

``DEFAULT_HALO``
    Context pixels the DeepImageJ U-Net needs on each side of a tile (its receptive-field
    radius); tiled inference and the bioimage.io export round it up to the network's size
    multiple (48 for a multiple of 8 or 16).
``DEFAULT_TILE``
    Window side of tiled inference in pixels.
"""

DEFAULT_HALO = 47
DEFAULT_TILE = 512

__all__ = ["DEFAULT_HALO", "DEFAULT_TILE"]
