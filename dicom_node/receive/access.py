"""Who may open an association: calling AE allow-list, optionally pinned to source addresses.

AE titles are not authentication (any peer can claim any title), so sites that care pin each
title to the modality's address or network, or use TLS client certificates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from monitor.settings import NodeSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEALTH_CHECK_AE = "QSMSTATUS"
"""Calling AE of `qsm-monitor status` and container health checks. Admitted from a loopback
address whatever the allow-list, for C-ECHO only (`permits_storage` refuses its C-STOREs), so
a site's allow-list cannot make its own health check fail."""


@dataclass(frozen=True)
class AccessPolicy:
    allowed_ae: frozenset[str] = frozenset()
    """Empty: any calling AE title."""
    networks_by_ae: dict[str, tuple[Network, ...]] = field(default_factory=dict)
    """AE titles listed here may only connect from these networks."""

    @classmethod
    def from_settings(cls, node: NodeSettings) -> AccessPolicy:
        """Raises ValueError naming the entry if an address is not an IP address or CIDR."""
        networks: dict[str, tuple[Network, ...]] = {}
        for ae, addresses in node.calling_ae_addresses.items():
            try:
                nets = tuple(ipaddress.ip_network(a.strip(), strict=False) for a in addresses)
            except ValueError as exc:
                raise ValueError(f"node.calling_ae_addresses[{ae!r}]: {exc}") from exc
            networks[ae.strip()] = nets
        return cls(frozenset(a.strip() for a in node.allowed_calling_ae), networks)

    def permits(self, calling_ae: str, address: str) -> bool:
        """May this peer open an association at all (storage, or the local health check)?"""
        return self.permits_storage(calling_ae, address) or is_local_health_check(
            calling_ae, address
        )

    def permits_storage(self, calling_ae: str, address: str) -> bool:
        """May this peer store instances: the allow-list and address pinning as configured."""
        ae = calling_ae.strip()
        if self.allowed_ae and ae not in self.allowed_ae:
            return False
        networks = self.networks_by_ae.get(ae)
        if networks is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)


def is_local_health_check(calling_ae: str, address: str) -> bool:
    """The status command's C-ECHO from this machine."""
    try:
        return calling_ae.strip() == HEALTH_CHECK_AE and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
