"""Typed keys of the state a service app holds (`app[SESSIONS]`)."""

from __future__ import annotations

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from .remote import RemoteService
from .session import SessionManager
from .settings import Settings

__all__ = ["SETTINGS", "SESSIONS", "SIO", "REMOTE"]

SETTINGS = web.AppKey("pipelines_settings", Settings)
SESSIONS = web.AppKey("pipelines_sessions", SessionManager)
SIO = web.AppKey("pipelines_sio", socketio.AsyncServer)
REMOTE = web.AppKey("pipelines_remote", RemoteService)
