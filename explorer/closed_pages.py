"""The server's handling of pages that close while a message to them is in flight.

Installed by ``explorer.app.create_app`` on the server's event loop (under ``panel serve`` and
``explorer.server.serve`` alike); imports nothing of the explorer.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

log = logging.getLogger("hydrolens.explorer")

_QUIET_LOOPS: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()


def closed_page_handler(previous=None):
    """An asyncio exception handler for the server loop: a write to a page's websocket that
    failed because the page had closed (tornado's ``WebSocketClosedError`` /
    ``StreamClosedError``) is logged as one warning line; anything else goes to ``previous``
    (or the loop's default handler, which logs the traceback).

    Why: Panel 1.9 cancels a closed session's pending write futures without retrieving their
    exception, so asyncio logs "Task exception was never retrieved" with a traceback whenever a
    tab closes while an update to it (a poll, the panels sent after the first paint) is in
    flight. That is a user closing a tab, not an error of the app.
    """
    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, (WebSocketClosedError, StreamClosedError)):
            log.warning("a message to a page that had closed was dropped (%s)", type(exc).__name__)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handler


def quiet_closed_pages() -> None:
    """Install ``closed_page_handler`` on the running server loop, once per loop; a no-op
    outside a running loop (the app built in-process, in tests)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if loop in _QUIET_LOOPS:
        return
    loop.set_exception_handler(closed_page_handler(loop.get_exception_handler()))
    _QUIET_LOOPS.add(loop)
