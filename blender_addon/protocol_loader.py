"""Where the add-on gets the wire protocol from: one file, the backend's ``core/protocol.py``.

In the built zip, build_addon.py puts a copy beside this file (``protocol.py``); in a source
checkout the add-on reads ``../core/protocol.py`` directly. Standard library only either way.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

try:
    from . import protocol  # noqa: F401  (the built add-on)
except ImportError:
    _source = Path(__file__).resolve().parent.parent / "core" / "protocol.py"
    if not _source.exists():
        raise ImportError(f"the motionclip wire protocol is missing: neither {Path(__file__).parent / 'protocol.py'} "
                          f"nor {_source} exists; install the add-on from the zip build_addon.py makes") from None
    _name = f"{__package__}.protocol"
    _spec = importlib.util.spec_from_file_location(_name, _source)
    protocol = importlib.util.module_from_spec(_spec)
    sys.modules[_name] = protocol
    _spec.loader.exec_module(protocol)
