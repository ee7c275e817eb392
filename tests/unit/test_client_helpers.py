"""Small helpers of libaci.registry.client that stand in for stdlib modules
(ipaddress, base64) so that a fetch does not import them: checked against those."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libaci.registry.client import _b64, is_loopback


def _reference(host: str) -> bool:
    """What is_loopback did with ipaddress."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:5000", "127.255.255.254:80", "127.1", "127.000.000.001",
    "128.0.0.1", "10.0.0.1:443", "0.0.0.0", "localhost", "localhost:5000", "LOCALHOST",
    "::1", "[::1]", "[::1]:5000", "0:0:0:0:0:0:0:1", "::2", "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]:5000", "fe80::1", "example.com", "example.com:5000",
    "127.0.0.1.nip.io", "", ":", "[]", "1.2.3.4.5", "256.0.0.1", " 127.0.0.1",
])
def test_is_loopback_agrees_with_ipaddress(host: str) -> None:
    assert is_loopback(host) == _reference(host)


@given(st.ip_addresses())
def test_is_loopback_agrees_with_ipaddress_on_any_address(ip) -> None:  # type: ignore[no-untyped-def]
    for host in (str(ip), f"[{ip}]:5000" if ip.version == 6 else f"{ip}:5000"):
        assert is_loopback(host) == _reference(host)


@given(st.binary(max_size=200))
def test_b64_is_base64(raw: bytes) -> None:
    assert _b64(raw) == base64.b64encode(raw).decode()
