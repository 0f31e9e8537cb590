"""Where the add-on gets the backend's shared files from: the wire protocol (``core/protocol.py``)
and the scene pieces both headless Blender pipelines use (``render/shared_scene.py``).

In the built zip, build_addon.py puts copies beside this file (``protocol.py``,
``shared_scene.py``); in a source checkout the add-on reads ``../core/protocol.py`` and
``../render/shared_scene.py`` directly, the latter's ``load_module`` loading the former.
Standard library and numpy only either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from . import protocol, shared_scene  # noqa: F401  (the built add-on)
except ImportError:
    _repo = Path(__file__).resolve().parent.parent
    _sources = (_repo / "core" / "protocol.py", _repo / "render" / "shared_scene.py")
    _missing = [str(p) for p in _sources if not p.exists()]
    if _missing:
        raise ImportError(f"the motionclip wire protocol or scene helpers are missing: neither "
                          f"{Path(__file__).parent / 'protocol.py'} nor {', '.join(_missing)} exists; install the "
                          "add-on from the zip build_addon.py makes") from None
    if str(_sources[1].parent) not in sys.path:
        sys.path.append(str(_sources[1].parent))  # appended: it shadows nothing
    import shared_scene

    protocol = shared_scene.load_module(f"{__package__}.protocol", _sources[0])
