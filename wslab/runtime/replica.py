"""Entry point of a server replica process (``python -m wslab.runtime.replica '<json spec>'``).

Started by :class:`~wslab.runtime.servers.ProcessServer`. It speaks to its parent in JSON lines on stdout:
first ``{"event": "listening", "port": N}``, then one line per log record (uvicorn's, and the events wslab's
apps report through the ``wslab`` logger with a ``wslab_kind``), so the parent can show the replica's
logs in the lab's event log without parsing free text. SIGTERM stops it with the same fast, bounded
shutdown as the in-loop server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

import uvicorn.importer

from wslab.runtime.servers import _config, _FastServer, option_warnings


class _JsonLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message} ({type(exc).__name__}: {exc})"
        line = {"logger": record.name, "level": record.levelname, "message": message}
        kind = getattr(record, "wslab_kind", None)  # set by apps that report events (wslab.chat)
        if kind:
            line["kind"] = kind
        _say(line)


def _say(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


async def _serve(spec: dict[str, Any]) -> None:
    app = uvicorn.importer.import_from_string(spec["app"])
    if spec.get("factory"):
        app = app()
    options = dict(spec.get("options") or {})
    server = _FastServer(_config(app, int(spec.get("port", 0)), options))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    _say({"event": "listening", "port": server.port})
    for warning in option_warnings(app, options):
        logging.getLogger("uvicorn.error").warning(warning)
    await stop.wait()
    await server.stop(float(options.get("timeout_graceful_shutdown") or 1.0))


def main() -> None:
    spec = json.loads(sys.argv[1])
    for name in ("uvicorn", "wslab"):  # the server's log, and what wslab's apps report
        logger = logging.getLogger(name)
        logger.addHandler(_JsonLines())
        logger.propagate = False
        logger.setLevel(logging.INFO)
    asyncio.run(_serve(spec))


if __name__ == "__main__":
    main()
