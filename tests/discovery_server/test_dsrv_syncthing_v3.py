"""Syncthing's discovery v3 at /v2/: the device is the TLS client certificate's, and the
store is the one /v1 uses."""

from __future__ import annotations

import base64
import ssl
import urllib.parse
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from dsrv_helpers import running_server, write_tls_files

from p2psync.identity import DeviceID, Identity


def _client_files(directory: Path, identity: Identity) -> tuple[str, str]:
    cert, key = directory / "device-cert.pem", directory / "device-key.pem"
    cert.write_bytes(identity.cert_pem)
    key.write_bytes(
        identity.private_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert), str(key)


def _device_client(url: str, directory: Path, identity: Identity) -> httpx.AsyncClient:
    """Like Syncthing: the device certificate as client certificate, no CA checks."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(*_client_files(directory, identity))
    return httpx.AsyncClient(base_url=url, verify=context, timeout=10)


async def test_announce_with_a_client_certificate_then_lookup_on_both_apis(
    tmp_path: Path, identity: Identity
) -> None:
    cert, key = write_tls_files(tmp_path)
    async with running_server(certfile=str(cert), keyfile=str(key), verify=False) as server:
        assert server.service.certificate_id is not None
        async with _device_client(server.url, tmp_path, identity) as device:
            response = await device.post(
                "/v2/",
                json={
                    "addresses": [
                        "tcp://0.0.0.0:22000",
                        "quic://:22000",
                        "relay://192.0.2.9:22067/?id=" + str(DeviceID(bytes(32))) + "&x=1",
                        "dynamic+https://relays.syncthing.net/endpoint",  # dropped
                        "tcp://not a host:1",  # dropped
                    ]
                },
            )
            assert response.status_code == 204, response.text
            assert int(response.headers["Reannounce-After"]) > 0
        expected = [
            "tcp://127.0.0.1:22000",
            "quic://127.0.0.1:22000",
            f"relay://192.0.2.9:22067/?id={DeviceID(bytes(32))}",
        ]
        v3 = await server.http.get("/v2/", params={"device": str(identity.device_id)})
        assert v3.status_code == 200 and v3.json()["addresses"] == expected
        assert v3.json()["seen"].endswith("Z")
        v1 = await server.http.get("/v1/lookup", params={"device": str(identity.device_id)})
        assert v1.json()["addresses"] == expected


async def test_announce_without_a_certificate_or_address_is_refused(
    tmp_path: Path, identity: Identity
) -> None:
    cert, key = write_tls_files(tmp_path)
    async with running_server(certfile=str(cert), keyfile=str(key), verify=False) as server:
        anonymous = await server.http.post("/v2/", json={"addresses": ["tcp://:22000"]})
        assert anonymous.status_code == 403
        async with _device_client(server.url, tmp_path, identity) as device:
            for body in ({"addresses": ["udp://1.2.3.4:1"]}, {"addresses": "tcp://:1"}, [1]):
                assert (await device.post("/v2/", json=body)).status_code == 400
            assert (await device.post("/v2/", content=b"{not json")).status_code == 400
        unknown = await server.http.get("/v2/", params={"device": str(identity.device_id)})
        assert unknown.status_code == 404 and "Retry-After" in unknown.headers


async def test_a_trusted_proxy_passes_the_certificate_in_a_header(identity: Identity) -> None:
    pem = identity.cert_pem.decode()
    der_b64 = base64.b64encode(identity.cert_der).decode()
    headers_variants = [
        {"X-SSL-Cert": urllib.parse.quote(pem)},  # nginx $ssl_client_escaped_cert
        {"X-SSL-Cert": pem.replace("\n", " ").strip()},  # PEM with spaces for newlines
        {"X-Tls-Client-Cert-Der-Base64": der_b64},  # Caddy
        {"X-Forwarded-Tls-Client-Cert": urllib.parse.quote(der_b64)},  # Traefik
    ]
    async with running_server(trust_forwarded=True) as trusting:
        for i, headers in enumerate(headers_variants):
            port = 22000 + i
            response = await trusting.http.post(
                "/v2/",
                json={"addresses": [f"tcp://:{port}"]},
                headers={**headers, "X-Forwarded-For": "198.51.100.4"},
            )
            assert response.status_code == 204, (headers, response.text)
            lookup = await trusting.http.get("/v2/", params={"device": str(identity.device_id)})
            assert f"tcp://198.51.100.4:{port}" in lookup.json()["addresses"]
        bad = await trusting.http.post(
            "/v2/", json={"addresses": ["tcp://:1"]}, headers={"X-SSL-Cert": "garbage"}
        )
        assert bad.status_code == 400
    async with running_server() as untrusting:  # without --trust-forwarded a header is no proof
        response = await untrusting.http.post(
            "/v2/", json={"addresses": ["tcp://:1"]}, headers=headers_variants[0]
        )
        assert response.status_code == 403
