"""``--workers N``: N processes serve one port (SO_REUSEPORT) under a small supervisor.

The supervisor starts each worker as ``python -m core_connectors.server`` with its options in the
environment, serves the Prometheus port itself from the totals each worker writes (so scrapes see the sum),
forwards SIGTERM/SIGINT to the workers (a second signal kills them), and restarts a worker that dies after
it has served a while. Workers run in their own sessions, so a terminal's Ctrl-C reaches only the
supervisor; a pipe tells them when the supervisor itself is gone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from ._app import ServeOptions, _start_metrics_server
from ._metrics import METRICS_DIR_ENV

__all__ = ["OPTIONS_ENV", "supervise"]

logger = logging.getLogger("core_connectors.server")

OPTIONS_ENV = "CORE_CONNECTORS_WORKER_OPTIONS"
_QUICK_DEATH = 3.0  # a worker that dies sooner than this after its start will not do better restarted


def supervise(options: ServeOptions) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="core-connectors-metrics-")
    env = {**os.environ, METRICS_DIR_ENV: metrics_dir}
    read_fd, write_fd = os.pipe()  # write_fd stays open here only; workers see EOF when we are gone
    http = None
    procs: list[tuple[subprocess.Popen[bytes], float]] = []
    stopping: list[int] = []

    def spawn(index: int) -> tuple[subprocess.Popen[bytes], float]:
        worker = dataclasses.replace(options, worker_index=index, parent_fd=read_fd)
        proc = subprocess.Popen(
            [sys.executable, "-m", "core_connectors.server"],
            env={**env, OPTIONS_ENV: json.dumps(dataclasses.asdict(worker))},
            pass_fds=(read_fd,),
            start_new_session=True,
        )
        return proc, time.monotonic()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping:
            logger.warning("second %s: killing the workers", signal.Signals(signum).name)
            for proc, _ in procs:
                _send(proc, signal.SIGKILL)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os._exit(128 + signum)
        stopping.append(signum)
        logger.info("%s: draining %d workers", signal.Signals(signum).name, len(procs))
        for proc, _ in procs:
            _send(proc, signal.SIGTERM)

    try:
        if options.prometheus_port:
            from prometheus_client import CollectorRegistry

            from ._metrics import ProcessTreeCollector, WorkerTotalsCollector

            registry = CollectorRegistry()
            registry.register(WorkerTotalsCollector(metrics_dir))
            registry.register(ProcessTreeCollector())
            http = _start_metrics_server(options.prometheus_port, registry)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        procs.extend(spawn(i) for i in range(options.workers))
        pids = ", ".join(str(p.pid) for p, _ in procs)
        logger.info("started %d workers on %s:%d (pids %s)", options.workers, options.host, options.port, pids)
        deadline = time.monotonic() + options.timeout if options.timeout is not None else None
        code = 0
        while any([proc.poll() is None for proc, _ in procs]):  # a list: poll every one of them
            time.sleep(0.1)
            if deadline is not None and time.monotonic() > deadline and not stopping:
                on_signal(signal.SIGTERM, None)
            for i, (proc, started) in enumerate(procs):
                if stopping or proc.poll() is None:
                    continue
                if time.monotonic() - started < _QUICK_DEATH:
                    logger.error("worker %d exited with %d at start: stopping", i + 1, proc.returncode)
                    code = proc.returncode or 1
                    on_signal(signal.SIGTERM, None)
                    break
                logger.warning("worker %d (pid %d) exited with %d: restarting it", i + 1, proc.pid, proc.returncode)
                procs[i] = spawn(i)
        codes = [proc.returncode for proc, _ in procs]
        return code or next((c for c in codes if c), 0)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                _send(proc, signal.SIGKILL)
        if http is not None:
            http[0].shutdown()
        os.close(read_fd)
        os.close(write_fd)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _send(proc: subprocess.Popen[Any], signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass


def worker_main() -> int:
    """Entry of one worker process: the options come from the supervisor through the environment."""
    from ._app import serve

    options = ServeOptions(**json.loads(os.environ.pop(OPTIONS_ENV)))
    return serve(options)
