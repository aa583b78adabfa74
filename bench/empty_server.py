"""Ceiling for the benchmark: an empty grpc.aio servicer that answers from fixed messages.

    python bench/empty_server.py --port 8000

CreateTask/GetTask/ListAgents return at once; GetTask for task category "blocking" awaits
asyncio.sleep(0.05), the best any server can do for a connector whose `get` takes 50 ms.
"""

import argparse
import asyncio

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

CREATED = agent_pb2.CreateTaskResponse(resource_meta=b'{"deadline": 0.0}')
DONE = agent_pb2.GetTaskResponse(resource=agent_pb2.Resource(phase=3))  # TaskExecution.SUCCEEDED
AGENTS = agent_pb2.ListAgentsResponse(
    agents=[agent_pb2.Agent(name="Sleep Connector", supported_task_categories=[agent_pb2.TaskCategory(name="sleep")])]
)


class AsyncAgent(agent_pb2_grpc.AsyncAgentServiceServicer):
    """CreateTask and GetTask with no work behind them."""

    async def CreateTask(self, request, context):
        return CREATED

    async def GetTask(self, request, context):
        if request.task_category.name == "blocking":
            await asyncio.sleep(0.05)
        return DONE


class Metadata(agent_pb2_grpc.AgentMetadataServiceServicer):
    """ListAgents with one fixed agent."""

    async def ListAgents(self, request, context):
        return AGENTS


async def main(port: int) -> None:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(AsyncAgent(), server)
    agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(Metadata(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, the event loop ours uses")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args.port))
