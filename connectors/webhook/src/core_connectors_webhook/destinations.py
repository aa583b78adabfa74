"""Where webhooks may go: the operator's allow and deny lists, and the built-in metadata-address rule.

A rule is a host name (``hooks.example.com``), a domain with its subdomains (``.example.com`` or
``*.example.com``), an address or a network (``10.0.0.0/8``, ``fd00::/8``). The policy judges a destination
by its name and by every address the name resolves to, before any connection is opened:

1. a destination that a deny rule matches (by name, or any of its addresses) is denied;
2. when allow rules are set, a destination must match one (by name, or each of its addresses);
3. link-local and cloud metadata addresses (``BUILTIN_DENIED``) are denied unless allowed explicitly: by the
   destination's exact host name, or by a network that lies inside the built-in one (allowing ``0.0.0.0/0``
   does not open the metadata service, nor does a domain rule: anyone can point a subdomain's DNS at it).

An address is judged as the IPv4 address it carries when it is IPv4-mapped (``::ffff:a.b.c.d``) or in the
NAT64 well-known prefix (``64:ff9b::a.b.c.d``), which reach that IPv4 address.

This module imports no HTTP client, so the policy can be built and checked anywhere.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["ALLOW_ENV", "BUILTIN_DENIED", "DENY_ENV", "DestinationDenied", "DestinationPolicy"]

ALLOW_ENV = "CORE_CONNECTORS_WEBHOOK_ALLOW"
"""Comma- or space-separated allow rules; unset or empty allows every destination the deny rules leave."""
DENY_ENV = "CORE_CONNECTORS_WEBHOOK_DENY"
"""Comma- or space-separated deny rules, checked before the allow rules."""

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

BUILTIN_DENIED: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local; 169.254.169.254: AWS, GCP, Azure, OCI metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("fd20:ce::254/128"),  # GCP metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud metadata (the older address)
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationDenied(Exception):
    """The destination breaks the outbound rules; the message says which rule and why."""


@dataclass(frozen=True)
class _Rules:
    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".example.com": the domain's subdomains
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, rules: str | Iterable[str] | None) -> _Rules:
        items = rules.replace(",", " ").split() if isinstance(rules, str) else list(rules or ())
        names: set[str] = set()
        domains: list[str] = []
        networks: list[Network] = []
        for raw in items:
            rule = raw.strip()
            if not rule:
                continue
            try:
                networks.append(ipaddress.ip_network(rule.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _normal_name(rule)
            if name.startswith("*."):
                name = name[1:]
            if not name or any(c in name for c in "/:@ *"):
                raise ValueError(f"not a host name, domain, address or network: {raw!r}")
            if name.startswith("."):
                domains.append(name)
            else:
                names.add(name)
        return cls(frozenset(names), tuple(domains), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.domains or self.networks)

    def name_rule(self, host: str) -> str | None:
        if host in self.names:
            return host
        return next((d for d in self.domains if host.endswith(d)), None)

    def network_of(self, address: Address) -> Network | None:
        return next((n for n in self.networks if address in n), None)


@dataclass(frozen=True)
class DestinationPolicy:
    """The outbound rules of one webhook connector; ``check`` raises DestinationDenied or returns None."""

    allow: _Rules = _Rules()
    deny: _Rules = _Rules()

    @classmethod
    def from_rules(
        cls, allow: str | Iterable[str] | None = None, deny: str | Iterable[str] | None = None
    ) -> DestinationPolicy:
        """Rules as strings (comma/space separated) or lists; a malformed rule is a ValueError naming it."""
        return cls(_Rules.parse(allow), _Rules.parse(deny))

    @classmethod
    def from_env(
        cls, allow: str | Iterable[str] | None = None, deny: str | Iterable[str] | None = None
    ) -> DestinationPolicy:
        """The rules given here, each list that is None read from its environment variable instead."""
        return cls(_given_or_env(allow, ALLOW_ENV), _given_or_env(deny, DENY_ENV))

    def check(self, host: str, addresses: Sequence[Address]) -> None:
        """Judge ``host`` (as written in the URL) and every address it resolved to."""
        name = _normal_name(host)
        denied_by = self.deny.name_rule(name)
        if denied_by:
            raise DestinationDenied(f"{name} is denied by the rule {denied_by!r} ({DENY_ENV})")
        if not addresses:
            raise DestinationDenied(f"{name} resolved to no address")
        allowed_by_name = self.allow.name_rule(name) is not None
        named_exactly = name in self.allow.names
        for address in map(_unmapped, addresses):
            network = self.deny.network_of(address)
            if network is not None:
                raise DestinationDenied(f"{name} resolves to {address}, in the denied network {network} ({DENY_ENV})")
            if self.allow and not allowed_by_name and self.allow.network_of(address) is None:
                raise DestinationDenied(f"{name} ({address}) matches none of the allowed destinations ({ALLOW_ENV})")
            builtin = next((n for n in BUILTIN_DENIED if address in n), None)
            if builtin is not None and not named_exactly and not self._explicitly_allowed(address, builtin):
                raise DestinationDenied(
                    f"{name} resolves to {address}, a link-local or cloud metadata address ({builtin}), "
                    f"which webhooks may not reach unless {ALLOW_ENV} names it"
                )

    def _explicitly_allowed(self, address: Address, builtin: Network) -> bool:
        return any(
            n.version == builtin.version and address in n and n.subnet_of(builtin)  # type: ignore[arg-type]
            for n in self.allow.networks
        )


def _given_or_env(rules: str | Iterable[str] | None, variable: str) -> _Rules:
    if rules is not None:
        return _Rules.parse(rules)
    try:
        return _Rules.parse(os.environ.get(variable))
    except ValueError as e:
        raise ValueError(f"{variable}: {e}") from None


def _normal_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _unmapped(address: Address) -> Address:
    """``::ffff:169.254.169.254`` is 169.254.169.254 to the kernel, and ``64:ff9b::169.254.169.254`` to a NAT64
    gateway: so to the rules."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address
