"""The webhook figure of bench/run.py: ExecuteTaskSync of a webhook task, against a local HTTP stand-in.

The stand-in is nginx answering every request with a fixed JSON body (`apt-get install -y nginx`): fast and
out of Python, so the figure is the connector's and the service's cost, the same stand-in for both servers.
The task is the template flytekit 1.16's `WebhookTask` writes (POST, a JSON body, no inputs); h2load sends
its two request messages (header, inputs) as one body, which is how a client streams them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import struct_pb2

SYNC_SERVICE = "/flyteidl.service.SyncAgentService/"
REPLY = '{"ok": true}'
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{reply}'; }}
    }}
}}
"""


class StandIn:
    """nginx on 127.0.0.1:`port` answering 200 and REPLY to anything."""

    def __init__(self, directory: Path, port: int, pin: list[str]):
        self.dir, self.port, self.pin = directory, port, pin
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, reply=REPLY))
        argv = [*self.pin, nginx, "-e", str(self.dir / "nginx-error.log"), "-p", str(self.dir), "-c", str(conf)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        error_log = (self.dir / "nginx-error.log").read_text(errors="replace") if self.dir.exists() else ""
        raise RuntimeError(f"nginx did not listen on {self.port}: {error_log[-1000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def available() -> bool:
    return bool(shutil.which("nginx") or Path("/usr/sbin/nginx").exists())


def webhook_requests(url: str) -> list[agent_pb2.ExecuteTaskSyncRequest]:
    """The two messages of an ExecuteTaskSync call for a POST webhook task to `url`."""
    custom = struct_pb2.Struct()
    custom.update(
        {
            "url": url,
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "data": {"event": "bench", "n": 1},
            "show_data": False,
            "show_url": False,
            "timeout_sec": 10,
        }
    )
    info = interface_pb2.Variable(type=types_pb2.LiteralType(simple=types_pb2.STRUCT), description="info")
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project="bench", name="bench.webhook"),
        type="webhook",
        metadata=tasks_pb2.TaskMetadata(
            runtime=tasks_pb2.RuntimeMetadata(type=tasks_pb2.RuntimeMetadata.FLYTE_SDK, version="1.16.31")
        ),
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(), outputs=interface_pb2.VariableMap(variables={"info": info})
        ),
        custom=custom,
    )
    header = agent_pb2.CreateRequestHeader(template=template, output_prefix="/tmp/bench")
    return [
        agent_pb2.ExecuteTaskSyncRequest(header=header),
        agent_pb2.ExecuteTaskSyncRequest(inputs=literals_pb2.LiteralMap()),
    ]
