"""Named constants of U-Net inference, importable without torch.

``DEFAULT_HALO``
    Context pixels the DeepImageJ U-Net needs on each side of a tile (its receptive-field
    radius); tiled inference and the bioimage.io export round it up to the network's size
    multiple (48 for a multiple of 8 or 16).
``DEFAULT_TILE``
    Window side of tiled inference in pixels. 1024: a frame up to 928 x 928 px (a 576 x 720
    PSC frame, a 520 x 696 U373 frame) runs as one window (with ``whole_halo`` px of
    reflected context, default 0) instead of four 512 px windows that carry 2.5x its pixels
    (one pass is ~2.4x faster per frame on the CPU, measured 2026-12-02); larger frames are
    tiled with 928 px cores.
"""

DEFAULT_HALO = 47
DEFAULT_TILE = 1024

__all__ = ["DEFAULT_HALO", "DEFAULT_TILE"]
