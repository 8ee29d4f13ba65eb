"""The pipelines service: an aiohttp app with a python-socketio server on the pipelines engine.

`create_app(settings)` builds it; `python server.py` (or `pipelines-server`) runs it;
`setup(app, path="/pipelines")` mounts it into an aiohttp app of yours.
"""

from .app import create_app
from .mount import setup
from .settings import Settings

__all__ = ["Settings", "create_app", "setup"]
