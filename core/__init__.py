"""motionclip.core: motion representation, SMPL skeleton, motion I/O, datasets."""

__version__ = "0.1.0"
