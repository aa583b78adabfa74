"""Mixed-traffic clients for bench/run.py: loops of CreateTask, GetTask, DeleteTask with ~7% bad calls.

    python bench/mixed.py --port P --clients 16 --seconds 3 --seed 1

Each client loops: create a zero-length sleep task, get it (it must be SUCCEEDED), delete it; after a loop, with
probability 0.225, one bad call of a kind picked at random (so about 7% of all calls): bytes that are not a
GetTaskRequest, resource metadata that is not the connector's, an unknown task type, or a connector that fails
(task type "failing", bench/*_failing_connector.py). Requests and replies cross as bytes (parsed only where the
loop needs a field), so the clients cost the machine little. Prints one JSON line: loops, seconds, the count of
each (kind, status code) and the clients' own CPU time; bench/run.py compares the codes with what each server
should answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter

import grpc
from flyteidl.admin import agent_pb2
from run import SERVICE, SUCCEEDED, create_request

BAD_KINDS = ("bad bytes", "bad meta", "unknown type", "failing")
BAD_PER_LOOP = 0.225  # one bad call after 22.5% of the loops of 3 calls: 7% of the calls
CATEGORY = agent_pb2.TaskCategory(name="sleep", version=0)


def get_bytes(task_type: str, meta: bytes) -> bytes:
    category = agent_pb2.TaskCategory(name=task_type, version=0)
    return agent_pb2.GetTaskRequest(task_type=task_type, task_category=category, resource_meta=meta).SerializeToString()


BAD = {
    "bad bytes": b"\x0a\xff\xff\xff\xff",  # field 1 with a length that runs past the end: not a message
    "bad meta": get_bytes("sleep", b"{not json"),
    "unknown type": get_bytes("no-such-type", b'{"deadline": 0.0}'),
    "failing": get_bytes("failing", b'{"job_id": "job-1"}'),
}


async def client(channel: grpc.aio.Channel, rng: random.Random, until: float, seen: Counter) -> int:
    create = channel.unary_unary(SERVICE + "CreateTask")
    get = channel.unary_unary(SERVICE + "GetTask")
    delete = channel.unary_unary(SERVICE + "DeleteTask")
    create_body = create_request("sleep").SerializeToString()
    loops = 0

    async def call(kind: str, method, body: bytes) -> bytes | None:
        try:
            reply = await method(body, timeout=30)
        except grpc.aio.AioRpcError as e:
            seen[f"{kind}: {e.code().name}"] += 1
            return None
        seen[f"{kind}: OK"] += 1
        return reply

    while time.perf_counter() < until:
        reply = await call("create", create, create_body)
        if reply is not None:
            meta = agent_pb2.CreateTaskResponse.FromString(reply).resource_meta
            reply = await call("get", get, get_bytes("sleep", meta))
            if reply is not None and agent_pb2.GetTaskResponse.FromString(reply).resource.phase != SUCCEEDED:
                seen["get: OK but not SUCCEEDED"] += 1
            body = agent_pb2.DeleteTaskRequest(task_type="sleep", task_category=CATEGORY, resource_meta=meta)
            await call("delete", delete, body.SerializeToString())
            loops += 1
        if rng.random() < BAD_PER_LOOP:
            kind = rng.choice(BAD_KINDS)
            await call(kind, get, BAD[kind])
    return loops


async def main(port: int, clients: int, seconds: float, seed: int) -> dict:
    seen: Counter = Counter()
    cpu = time.process_time()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        started = time.perf_counter()
        until = started + seconds
        rngs = [random.Random(seed * 1000 + i) for i in range(clients)]
        loops = await asyncio.gather(*(client(channel, rng, until, seen) for rng in rngs))
        took = time.perf_counter() - started
    return {"loops": sum(loops), "seconds": took, "codes": dict(seen), "cpu_s": time.process_time() - cpu}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.port, args.clients, args.seconds, args.seed))))
