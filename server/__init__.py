"""The pipelines service: an aiohttp app with a python-socketio server on the pipelines engine.

`create_app(settings)` builds it; `python server.py` (or `pipelines-server`) runs it.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
