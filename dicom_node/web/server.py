"""Running the console beside the DICOM node: uvicorn in a thread of the `serve` process.

Access logs are off: request lines carry patient IDs in query strings, and the node's logs
never hold patient data. Start-up failures (port taken) surface as OSError in `start`.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from dicom_node.db import configured_engine, create_schema
from dicom_node.web.accounts import User
from dicom_node.web.alerts import AlertAck
from dicom_node.web.app import create_app
from dicom_node.web.audit import AuditEntry
from dicom_node.web.web_sessions import WebSession
from monitor.settings import Settings

CONSOLE_TABLES = (User, WebSession, AuditEntry, AlertAck)
"""Imported so `create_schema` creates them (tables register on import)."""
START_TIMEOUT_S = 15.0


def console_sessions(engine: Engine) -> sessionmaker:
    """Sessions over the node schema including the console's tables."""
    assert CONSOLE_TABLES  # the imports above register the tables
    return create_schema(engine)


class ConsoleServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = configured_engine(settings.storage)
        app = create_app(settings, console_sessions(self.engine))
        web = settings.web
        config = uvicorn.Config(
            app,
            host=web.host,
            port=web.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web-console", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.web.host}:{self.settings.web.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive():
                raise OSError(f"the web console could not listen on {self.url}")
            if time.monotonic() > deadline:
                raise OSError(f"the web console did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
        self.engine.dispose()
