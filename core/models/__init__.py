"""Models: the MotionCLIP auto-encoder (motionclip.py, exported here), the MoCLIP motion head and
student text encoder (moclip.py) and the text-motion evaluator (evaluator.py)."""

from .motionclip import PRESETS, MotionCLIP, MotionCLIPConfig, config_from_preset, lengths_to_mask

__all__ = ["PRESETS", "MotionCLIP", "MotionCLIPConfig", "config_from_preset", "lengths_to_mask"]
