"""Mixed-traffic clients for bench/run.py: loops of CreateTask, GetTask, DeleteTask with ~7% bad calls.

    python bench/mixed.py --port P --clients 32 --seconds 3 --seed 1

Each client loops: create a zero-length sleep task, get it (it must be SUCCEEDED), delete it; after a loop, with
probability 0.225, one bad call of a kind picked at random (so about 7% of all calls): bytes that are not a
GetTaskRequest, resource metadata that is not the connector's, an unknown task type, or a connector that fails
(task type "failing", bench/*_failing_connector.py). Prints one JSON line: loops, seconds, the count of each
(kind, status code) and the clients' own CPU time; bench/run.py compares the codes with what each server should
answer.

The clients share the machine's cores with the server, so every CPU microsecond they spend is one the server
does not get: requests are encoded once and cross as bytes both ways (no serializer on the channel); the Get and
Delete requests are the pre-encoded task type and category followed by the resource_meta field cut from the
CreateTask reply (protobuf merges concatenated fields); the event loop is uvloop where installed; the channel
does no retries (a retry would change the workload, and the retry filter costs every call).
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
META = agent_pb2.GetTaskRequest.DESCRIPTOR.fields_by_name["resource_meta"].number
assert META == agent_pb2.DeleteTaskRequest.DESCRIPTOR.fields_by_name["resource_meta"].number
REPLY_META = agent_pb2.CreateTaskResponse.DESCRIPTOR.fields_by_name["resource_meta"].number
LENGTH_DELIMITED = 2  # protobuf wire type of bytes, strings and messages


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7


def reply_meta(reply: bytes) -> bytes:
    """The resource_meta of a serialized CreateTaskResponse, skipping any other field (varint or length-delimited)."""
    i = 0
    while i < len(reply):
        key, i = read_varint(reply, i)
        if key & 7 == LENGTH_DELIMITED:
            size, i = read_varint(reply, i)
            if key >> 3 == REPLY_META:
                return reply[i : i + size]
            i += size
        else:
            _, i = read_varint(reply, i)
    return b""


def head(request_type, task_type: str) -> bytes:
    """task_type and task_category of a Get/DeleteTaskRequest, encoded: the request without its resource_meta."""
    category = agent_pb2.TaskCategory(name=task_type, version=0)
    return request_type(task_type=task_type, task_category=category).SerializeToString()


META_KEY = varint(META << 3 | LENGTH_DELIMITED)
GET_HEAD = head(agent_pb2.GetTaskRequest, "sleep")
DELETE_HEAD = head(agent_pb2.DeleteTaskRequest, "sleep")


def with_meta(request_head: bytes, meta: bytes) -> bytes:
    return request_head + META_KEY + varint(len(meta)) + meta


BAD = {
    "bad bytes": b"\x0a\xff\xff\xff\xff",  # field 1 with a length that runs past the end: not a message
    "bad meta": with_meta(GET_HEAD, b"{not json"),
    "unknown type": with_meta(head(agent_pb2.GetTaskRequest, "no-such-type"), b'{"deadline": 0.0}'),
    "failing": with_meta(head(agent_pb2.GetTaskRequest, "failing"), b'{"job_id": "job-1"}'),
}
CREATE = create_request("sleep").SerializeToString()


async def client(channel: grpc.aio.Channel, rng: random.Random, until: float, seen: Counter) -> int:
    create = channel.unary_unary(SERVICE + "CreateTask")
    get = channel.unary_unary(SERVICE + "GetTask")
    delete = channel.unary_unary(SERVICE + "DeleteTask")
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
        reply = await call("create", create, CREATE)
        if reply is not None:
            meta = reply_meta(reply)
            reply = await call("get", get, with_meta(GET_HEAD, meta))
            if reply is not None and agent_pb2.GetTaskResponse.FromString(reply).resource.phase != SUCCEEDED:
                seen["get: OK but not SUCCEEDED"] += 1
            await call("delete", delete, with_meta(DELETE_HEAD, meta))
            loops += 1
        if rng.random() < BAD_PER_LOOP:
            kind = rng.choice(BAD_KINDS)
            await call(kind, get, BAD[kind])
    return loops


async def main(port: int, clients: int, seconds: float, seed: int) -> dict:
    seen: Counter = Counter()
    cpu = time.process_time()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)]) as channel:
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
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    print(json.dumps(runner(main(args.port, args.clients, args.seconds, args.seed))))
