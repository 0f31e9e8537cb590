"""Models: the MotionCLIP auto-encoder."""

from .motionclip import PRESETS, MotionCLIP, MotionCLIPConfig, config_from_preset, lengths_to_mask

__all__ = ["PRESETS", "MotionCLIP", "MotionCLIPConfig", "config_from_preset", "lengths_to_mask"]
