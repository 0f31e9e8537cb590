"""motionclip.core: the library, the command line and the local backend server.

Rotations, the SMPL skeleton and `Motion` (rotations.py, skeleton.py, motion.py); motion files in
and out with retargeting (io/); datasets, importing and synthetic clips (data/); text and image
encoders (encoders/); the models: MotionCLIP, MoCLIP and the evaluator (models/); losses and
inference; the wire protocol, the server (server/) and its client; the `motionclip` command line
(cli.py and the parts that fill its registry).
"""

__version__ = "0.1.0"
