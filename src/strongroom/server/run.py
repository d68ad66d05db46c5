"""Run the API with uvicorn: loopback by default, TLS when given a certificate and key."""

from __future__ import annotations

import gc
import ipaddress
import logging
import logging.config
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from strongroom.enclave.analyses.run import preload
from strongroom.errors import Invalid
from strongroom.jobs import sandbox
from strongroom.platform import Platform
from strongroom.server import logs
from strongroom.server.app import METRICS_FROM, create_app
from strongroom.server.defaults import DEFAULT_HOST, DEFAULT_PORT

# How long a stopping server waits for its warm-up to finish the step it is in (an import, the
# index) before it closes the platform: the step, not the whole warm-up, and never unbounded.
WARM_STOP_SECONDS = 15.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, certificate: Path | None, key: Path | None) -> None:
    """Session cookies and tokens must not cross a network in the clear."""
    if (certificate is None) != (key is None):
        raise Invalid("give both --certificate and --private-key for TLS, or neither")
    if certificate is None and not is_loopback(host):
        raise Invalid(f"listening on {host} without TLS would send passwords and tokens in "
                      f"the clear; give --certificate and --private-key, or listen on "
                      f"127.0.0.1")
    for path in (certificate, key):
        if path is not None and not path.is_file():
            raise Invalid(f"{path} does not exist")


def serve(platform: Platform, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          certificate: Path | None = None, key: Path | None = None, *,
          warm: bool = True, metrics_from: Sequence[str] = METRICS_FROM) -> None:
    """``warm``: load the model libraries and build the raw-row scanner's index beside the
    first requests, not in the first researcher's (the tests' many short-lived servers
    skip it). ``metrics_from``: the networks of the platform team's scraper, the only
    peers ``/metrics`` answers (loopback by default; never the researchers')."""
    check_listen(host, certificate, key)
    # jobs a stopped server left running are ended, and their scratch destroyed (recorded)
    platform.jobs.recover()
    # analyses a stopped server left running say so when polled
    platform.runs.recover()
    logging.config.dictConfig(logs.config())  # uvicorn's: the warnings below are JSON too
    for problem in sandbox.shared_budgets(platform.jobs.limits):  # the custodian's to change
        logging.getLogger(__name__).warning("jobs: %s", problem)
    app = create_app(platform, metrics_from)
    # What the server has imported and built lives as long as it does: frozen out of the
    # collector's walks before any request is taken (so no request's data is among it), as
    # every full collection walked it all, and every Spark request makes one
    # (SparkEngine.release): 0.18 CPU-s each, 0.025 with it frozen.
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    warming = threading.Thread(target=_warm, args=(platform, stop), name="strongroom-warm",
                               daemon=True)
    if warm:
        warming.start()
    try:
        # uvicorn re-raises SIGTERM after its graceful shutdown, which would kill the process
        # before the caller closes the platform (and signs the audit log's tail): exit instead.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(app, host=host, port=port,
                    log_config=logs.config(),
                    ssl_certfile=str(certificate) if certificate else None,
                    ssl_keyfile=str(key) if key else None,
                    server_header=False, proxy_headers=False,
                    access_log=False)  # the app's own access lines carry request ids (logs.py)
    finally:
        # Stopped while warming (under load the imports take many seconds): the warm-up stops
        # at its next step and is waited for, so that the platform is not closed, nor the
        # interpreter finalised, under a thread still importing native libraries or reading
        # the cohort. A daemon thread left running is killed mid-call at finalisation, and the
        # exit could then hang on what it held (SIGTERM once not obeyed within 30 s).
        stop.set()
        if warming.is_alive():
            warming.join(WARM_STOP_SECONDS)


def _warm(platform: Platform, stop: threading.Event | None = None) -> None:
    """What every server pays once (about four seconds at 500,000 participants), paid before
    a researcher asks: never fatal, since the first output builds it anyway. Each step is
    skipped once ``stop`` is set (the server stopping)."""
    try:
        for step in (preload, platform.outputs.index):
            if stop is not None and stop.is_set():
                return
            step()
    except Exception:  # the first output will build it, and say why
        logging.getLogger(__name__).exception("warming the server failed; the first output "
                                              "will build its index")
