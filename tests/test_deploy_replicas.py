"""Replicas behind a real load balancer (nginx ``grpc_pass``): the scale-out story of docs/deploy.md.

Three service processes on loopback, nginx in front. State lives in the ResourceMeta, so any replica
answers for any task; a replica killed with SIGKILL fails only the calls it was running; a rolling SIGTERM,
even on a machine whose cores are all busy, drops no call and cuts no reply.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter

import pytest
from deploy_fleet import Fleet, Load, cpu_contention, health, template, wait_for
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from grpc_health.v1 import health_pb2

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(300)]

# Long enough for the readiness watcher (0.2 s period) and nginx's graceful reload on a busy machine.
DRAIN_DELAY = 2.0
CUT_REPLY = ("upstream sent goaway", "prematurely closed", "upstream rejected", "reset by peer")


def _cut_replies(fleet: Fleet) -> list[str]:
    return [line for line in fleet.nginx.error_log().splitlines() if any(s in line for s in CUT_REPLY)]


def _summary(load: Load) -> dict[str, int]:
    return dict(Counter(f"{f.operation} {f.code} {f.details}" for f in load.failures))


def test_a_task_created_on_one_replica_is_polled_and_deleted_on_the_others(tmp_path):
    with Fleet(tmp_path) as fleet:
        created = fleet.stub(0).CreateTask(agent_pb2.CreateTaskRequest(template=template(duration=0.5)), timeout=5)
        get = agent_pb2.GetTaskRequest(task_type="slow", resource_meta=created.resource_meta)
        assert fleet.stub(1).GetTask(get, timeout=5).resource.phase == TaskExecution.RUNNING
        time.sleep(0.6)
        assert fleet.stub(2).GetTask(get, timeout=5).resource.phase == TaskExecution.SUCCEEDED
        delete = agent_pb2.DeleteTaskRequest(task_type="slow", resource_meta=created.resource_meta)
        fleet.stub(1).DeleteTask(delete, timeout=5)
        # and through the balancer, which spreads calls over all three
        assert fleet.lb_stub().GetTask(get, timeout=5).resource.phase == TaskExecution.SUCCEEDED


def test_kill_9_of_a_replica_mid_load_loses_no_task(tmp_path):
    with Fleet(tmp_path) as fleet:
        load = Load(fleet.lb_stub(), threads=8, latency=0.2, duration=0.5)
        with load:
            wait_for(lambda: load.tasks_done >= 10, 30, "tasks to finish before the kill")
            killed_at = time.monotonic()
            fleet.replicas[1].kill()
            done_at_kill = load.tasks_done
            wait_for(lambda: load.tasks_done >= done_at_kill + 20, 60, "tasks to go on after the kill")
        # Every task the threads started finished (the load retries a failed call, as propeller does).
        assert load.lost == 0 and load.tasks_done >= done_at_kill + 20
        # The only failures are calls in flight on the killed replica, at the moment it died ...
        assert len(load.failures) <= load.threads, load.failures
        for failure in load.failures:
            assert failure.at - killed_at < 3.0, failure
            assert failure.code in ("UNAVAILABLE", "INTERNAL", "CANCELLED"), failure
        # ... and nginx stops sending calls to it: the survivors serve everything after.
        assert health(fleet.replicas[1].address) is None
        assert health(fleet.replicas[0].address) == health_pb2.HealthCheckResponse.SERVING


def test_rolling_restart_under_load_and_cpu_contention_drops_no_call(tmp_path):
    """Issue 12's drain under load: over many restarts, no call fails and nginx never sees a cut reply."""
    with Fleet(tmp_path, grace=10.0, args=(f"--drain-delay={DRAIN_DELAY}",), readiness=True) as fleet:
        load = Load(fleet.lb_stub(), threads=12, latency=0.1, duration=0.3, retry=True)
        restarts = 0
        with cpu_contention(), load:
            wait_for(lambda: load.tasks_done >= 10, 30, "tasks before the restarts")
            for _round in range(3):
                for replica in fleet.replicas:
                    replica.terminate()
                    assert replica.wait(30) == 0
                    replica.start()
                    restarts += 1
                    # as Kubernetes' minReadySeconds: the balancer takes the replica back before the next goes
                    wait_for(lambda r=replica: r.address in fleet.nginx.routes(), 10, "nginx to take it back")
                    time.sleep(0.5)
            finished = load.tasks_done
            wait_for(lambda: load.tasks_done >= finished + 10, 30, "tasks after the restarts")
        assert restarts == 9
        assert load.failures == [], _summary(load)
        assert load.lost == 0
        assert _cut_replies(fleet) == []
        assert load.calls > 100


def test_the_balancer_takes_a_draining_replica_out_before_its_calls_end(tmp_path):
    """A replica that got SIGTERM answers NOT_SERVING, leaves the balancer while the calls it accepted still
    run, gets no new call, and still finishes every accepted call (they outlast the drain delay: the grace
    period covers them) before it exits 0."""
    with Fleet(tmp_path, grace=10.0, args=(f"--drain-delay={DRAIN_DELAY}",), readiness=True) as fleet:
        draining = fleet.replicas[0]
        direct = fleet.stub(0)
        long_task = template(latency=DRAIN_DELAY + 1.5)
        results: list[object] = []
        accepted = [
            threading.Thread(
                target=lambda: results.append(
                    direct.CreateTask(agent_pb2.CreateTaskRequest(template=long_task), timeout=30)
                )
            )
            for _ in range(4)
        ]
        for thread in accepted:
            thread.start()
        time.sleep(0.3)  # the four calls are running on replica 0
        draining.terminate()
        others = [r.address for r in fleet.replicas[1:]]
        wait_for(lambda: fleet.nginx.routes() == others, DRAIN_DELAY, "nginx to drop the replica")
        assert health(draining.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert results == []  # out of the balancer before its calls end
        load = Load(fleet.lb_stub(), threads=4, latency=0.0, duration=0.0, retry=False)
        with load:
            time.sleep(1.0)
        assert load.failures == [] and load.calls > 20
        assert _served(draining, "get") == 0  # none of that load reached the draining replica
        for thread in accepted:
            thread.join(30)
        assert len(results) == 4  # every accepted call got its whole reply
        assert draining.wait(10) == 0
        assert _cut_replies(fleet) == []


def _served(replica, operation: str) -> float:
    """Calls of ``operation`` the replica answered, from its own metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "flyte_connector_requests_success_total" and sample.labels["operation"] == operation
    )
