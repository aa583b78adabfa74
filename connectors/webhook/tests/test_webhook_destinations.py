"""Outbound rules. The built-in metadata rule is tested where destinations are checked (before a connection
exists); everything that connects goes to loopback stand-ins, on sockets that refuse anything else."""

from __future__ import annotations

import ipaddress

import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from werkzeug import Response

from core_connectors_webhook import DestinationDenied, DestinationPolicy, WebhookConnector, WebhookTask
from core_connectors_webhook._http import GuardedBackend

pytestmark = pytest.mark.network

METADATA = ["169.254.169.254", "169.254.0.1", "fd00:ec2::254", "::ffff:169.254.169.254", "fe80::1"]


def ips(*addresses: str):
    return [ipaddress.ip_address(a) for a in addresses]


class NoSockets:
    """An inner network backend for checks that must never get as far as a connection."""

    async def connect_tcp(self, host, port, *args, **kwargs):
        raise AssertionError(f"a connection to {host}:{port} was attempted")


# ------------------------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("address", METADATA)
def test_metadata_and_link_local_addresses_are_denied_by_default(address):
    with pytest.raises(DestinationDenied, match="link-local or cloud metadata address"):
        DestinationPolicy().check("metadata.internal", ips(address))


@pytest.mark.parametrize(
    ("allow", "address"),
    [("0.0.0.0/0", "169.254.169.254"), ("169.0.0.0/8", "169.254.169.254"), ("::/0", "fd00:ec2::254")],
)
def test_a_broad_allow_rule_does_not_open_the_metadata_service(allow, address):
    with pytest.raises(DestinationDenied, match="metadata"):
        DestinationPolicy.from_rules(allow=allow).check("h", ips(address))


@pytest.mark.parametrize(
    ("allow", "host", "address"),
    [
        ("169.254.169.254", "h", "169.254.169.254"),
        ("169.254.0.0/16", "h", "169.254.1.2"),
        ("fd00:ec2::254", "h", "fd00:ec2::254"),
        ("metadata.google.internal", "metadata.google.internal", "169.254.169.254"),
    ],
)
def test_metadata_addresses_open_only_when_allowed_explicitly(allow, host, address):
    DestinationPolicy.from_rules(allow=allow).check(host, ips(address))  # no error


@pytest.mark.parametrize("allow", [".example.com", "*.example.com"])
def test_a_domain_rule_does_not_open_the_metadata_service(allow):
    """Whoever controls a subdomain's DNS can point it at the metadata service: only an exact name opens it."""
    policy = DestinationPolicy.from_rules(allow=allow)
    policy.check("hooks.example.com", ips("93.184.215.14"))  # the rule still admits the domain
    with pytest.raises(DestinationDenied, match="metadata"):
        policy.check("rebind.example.com", ips("169.254.169.254"))


@pytest.mark.parametrize("address", ["fd20:ce::254", "100.100.100.200", "192.0.0.192"])
def test_other_clouds_metadata_addresses_are_denied_too(address):
    with pytest.raises(DestinationDenied, match="cloud metadata address"):
        DestinationPolicy().check("h", ips(address))


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254"])
def test_a_nat64_address_is_judged_as_the_ipv4_address_it_reaches(address):
    with pytest.raises(DestinationDenied, match="169.254.169.254"):
        DestinationPolicy().check("h", ips(address))
    with pytest.raises(DestinationDenied, match="denied network 10.0.0.0/8"):
        DestinationPolicy.from_rules(deny="10.0.0.0/8").check("h", ips("64:ff9b::10.1.2.3"))


def test_deny_by_name_domain_and_network():
    policy = DestinationPolicy.from_rules(deny="localhost, *.internal.example .corp.example 10.0.0.0/8")
    with pytest.raises(DestinationDenied, match=r"localhost is denied by the rule 'localhost'"):
        policy.check("LocalHost.", ips("127.0.0.1"))
    with pytest.raises(DestinationDenied, match=r"'.internal.example'"):
        policy.check("a.b.internal.example", ips("192.0.2.1"))
    with pytest.raises(DestinationDenied, match=r"'.corp.example'"):
        policy.check("x.corp.example", ips("192.0.2.1"))
    with pytest.raises(DestinationDenied, match=r"resolves to 10.1.2.3, in the denied network 10.0.0.0/8"):
        policy.check("hooks.example", ips("192.0.2.1", "10.1.2.3"))  # every address counts
    policy.check("corp.example", ips("192.0.2.1"))  # a domain rule covers the subdomains, not the name


def test_an_allow_list_admits_only_what_it_names():
    policy = DestinationPolicy.from_rules(allow=["hooks.slack.com", "192.0.2.0/24"])
    policy.check("hooks.slack.com", ips("198.51.100.7"))
    policy.check("anything.example", ips("192.0.2.9"))
    with pytest.raises(DestinationDenied, match=r"matches none of the allowed destinations"):
        policy.check("evil.example", ips("198.51.100.7"))
    with pytest.raises(DestinationDenied, match=r"198.51.100.8"):
        policy.check("mixed.example", ips("192.0.2.9", "198.51.100.8"))


def test_deny_wins_over_allow():
    policy = DestinationPolicy.from_rules(allow="127.0.0.0/8", deny="127.0.0.2")
    policy.check("127.0.0.1", ips("127.0.0.1"))
    with pytest.raises(DestinationDenied, match="denied network 127.0.0.2/32"):
        policy.check("127.0.0.2", ips("127.0.0.2"))


def test_rules_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_ALLOW", "hooks.example")
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_DENY", "192.0.2.0/24")
    connector = WebhookConnector()
    assert connector.policy == DestinationPolicy.from_rules("hooks.example", "192.0.2.0/24")
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_DENY", "not/a/host")
    with pytest.raises(ValueError, match="^CORE_CONNECTORS_WEBHOOK_DENY: not a host name.*'not/a/host'"):
        WebhookConnector()
    assert WebhookConnector(deny=[]).policy == DestinationPolicy.from_rules("hooks.example")  # given wins


# --------------------------------------------------- the check, where connections are made (no socket)
@pytest.mark.parametrize("host", ["169.254.169.254", "fd00:ec2::254", "[fd00:ec2::254]", "::ffff:169.254.169.254"])
async def test_the_backend_refuses_metadata_addresses_before_connecting(host):
    backend = GuardedBackend(DestinationPolicy(), inner=NoSockets())
    with pytest.raises(DestinationDenied, match="metadata"):
        await backend.checked_addresses(host, 80)
    with pytest.raises(DestinationDenied, match="metadata"):
        await backend.connect_tcp(host, 80)  # the path every connection takes; NoSockets is never reached


async def test_the_backend_checks_what_a_name_resolves_to():
    backend = GuardedBackend(DestinationPolicy.from_rules(deny="127.0.0.0/8,::1"), inner=NoSockets())
    with pytest.raises(DestinationDenied, match=r"localhost resolves to (127.0.0.1|::1), in the denied network"):
        await backend.connect_tcp("localhost", 80)


async def test_the_backend_connects_only_to_an_address_it_checked(sockets):
    backend = GuardedBackend(DestinationPolicy(), inner=sockets)
    assert [str(a) for a in await backend.checked_addresses("127.0.0.1", 80)] == ["127.0.0.1"]
    with pytest.raises(Exception):  # noqa: B017 - refused: nothing listens on port 9 here
        await backend.connect_tcp("localhost", 9)
    assert sockets.connected and all(ipaddress.ip_address(h).is_loopback for h, _ in sockets.connected)


# ------------------------------------------------------------------- end to end, on loopback only
async def test_a_name_configured_as_denied_fails_the_task(make_connector, sockets, stand_in, template):
    connector = make_connector(deny="localhost")
    stand_in.expect_request("/hook").respond_with_data("ok")
    url = f"http://localhost:{stand_in.port}/hook"
    resource = await connector.do(template(url=url), "", None)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message == (
        "Webhook destination denied: localhost is denied by the rule 'localhost' (CORE_CONNECTORS_WEBHOOK_DENY)"
    )
    assert not sockets.connected and not stand_in.log


async def test_an_allow_list_without_the_destination_fails_the_task(make_connector, sockets, stand_in, template):
    connector = make_connector(allow="hooks.example")
    resource = await connector.do(template(url=stand_in.url_for("/hook")), "", None)
    assert resource.phase == TaskExecution.FAILED
    assert "matches none of the allowed destinations (CORE_CONNECTORS_WEBHOOK_ALLOW)" in resource.message
    assert not sockets.connected


async def test_a_metadata_url_fails_the_task_without_a_connection(make_connector, sockets, template):
    connector = make_connector()
    resource = await connector.do(template(url="http://169.254.169.254/latest/meta-data/"), "", None)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("Webhook destination denied: 169.254.169.254 resolves to 169.254.169.254, a")
    assert not sockets.connected


async def test_redirects_are_followed_when_asked_but_never_to_a_denied_address(
    make_connector, sockets, stand_in, template
):
    connector = make_connector(deny="127.0.0.2")
    stand_in.expect_request("/old").respond_with_response(
        Response("moved", status=302, headers={"Location": stand_in.url_for("/new")})
    )
    stand_in.expect_request("/new").respond_with_data("arrived")
    stand_in.expect_request("/away").respond_with_response(
        Response("moved", status=307, headers={"Location": f"http://127.0.0.2:{stand_in.port}/x"})
    )
    followed = WebhookTask(name="r", url=stand_in.url_for("/old"), method="GET", follow_redirects=True)
    resource = await connector.do(followed.task_template(), "", None)
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert [r.path for r, _ in stand_in.log] == ["/old", "/new"]

    away = WebhookTask(name="r", url=stand_in.url_for("/away"), method="GET", follow_redirects=True)
    resource = await connector.do(away.task_template(), "", None)
    assert resource.phase == TaskExecution.FAILED
    assert "127.0.0.2 resolves to 127.0.0.2, in the denied network 127.0.0.2/32" in resource.message
    assert all(host == "127.0.0.1" for host, _ in sockets.connected)


async def test_a_secret_header_is_not_carried_to_another_origin(make_connector, stand_in, secret_env):
    other = f"http://localhost:{stand_in.port}/other"  # another origin (name), the same loopback server
    stand_in.expect_request("/start").respond_with_response(Response("", status=302, headers={"Location": other}))
    stand_in.expect_request("/other").respond_with_data("ok")
    task = WebhookTask(
        name="r",
        url=stand_in.url_for("/start"),
        method="GET",
        headers={"X-Token": "{secrets.webhook_token}", "X-Plain": "kept"},
        follow_redirects=True,
    )
    resource = await make_connector().do(task.task_template(), "", None)
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    first, second = (r for r, _ in stand_in.log)
    assert first.headers["X-Token"] == secret_env
    assert "X-Token" not in second.headers and second.headers["X-Plain"] == "kept"


async def test_too_many_redirects_fail(make_connector, stand_in):
    stand_in.expect_request("/loop").respond_with_response(Response("", status=302, headers={"Location": "/loop"}))
    task = WebhookTask(name="r", url=stand_in.url_for("/loop"), method="GET", follow_redirects=True)
    resource = await make_connector().do(task.task_template(), "", None)
    assert resource.phase == TaskExecution.FAILED and "more than 5 redirects" in resource.message
    assert len(stand_in.log) == 6
