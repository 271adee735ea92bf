"""Client side of Syncthing's global discovery protocol v3 (stdiscosrv, ``/v2/`` URLs).

A server URL such as ``https://disco.example.org:8443/v2/?id=SERVER-ID`` speaks v3:
announcements are ``POST`` of ``{"addresses": [...]}`` over HTTPS with our device
certificate as the TLS client certificate (the server takes the device ID from it), and
lookups are ``GET ?device=ID``. The URL's options are ours, not the server's, and are not
sent: ``id=`` pins the server's certificate by its device ID (then no CA is needed),
``insecure`` skips certificate checks, ``noannounce`` / ``nolookup`` use the server for
one direction only. Answers carry the same status codes and headers as our ``/v1`` API,
so :class:`~p2psync.discovery.global_client.GlobalDiscovery` handles both alike.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from ..errors import DeviceIDError
from ..identity import DeviceID, Identity


@dataclass(frozen=True)
class V3Server:
    base: str  # where requests go: the URL without our options
    pin: DeviceID | None = None
    insecure: bool = False
    announces: bool = True
    looks_up: bool = True


def parse_v3_server(url: str) -> V3Server | None:
    """The v3 settings of ``url``, or None if it is not a ``/v2/`` (Syncthing) URL."""
    parts = urlsplit(url)
    if not parts.path.startswith("/v2"):
        return None
    query = parse_qs(parts.query, keep_blank_values=True)
    pin = None
    if query.get("id"):
        try:
            pin = DeviceID.parse(query["id"][0])
        except DeviceIDError:
            pin = None  # then the usual CA checks apply (config validation reports the id)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return V3Server(
        base=base,
        pin=pin,
        insecure="insecure" in query,
        announces="noannounce" not in query,
        looks_up="nolookup" not in query,
    )


class PinMismatchError(httpx.TransportError):
    """The server's certificate is not the one the URL's ``id=`` pins."""


class V3Client:
    """HTTPS to one v3 server with our device certificate as client certificate."""

    def __init__(self, identity: Identity, server: V3Server, timeout: float = 10.0) -> None:
        """Blocking (writes the certificate to a temp dir for ``ssl``): call in a thread."""
        self.server = server
        context = ssl.create_default_context()
        if server.pin is not None or server.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # trust comes from the pin, checked per answer
        with tempfile.TemporaryDirectory(prefix="p2psync-v3-") as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(identity.cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(identity.key_pem)
            context.load_cert_chain(str(cert), str(key))
        self.http = httpx.AsyncClient(verify=context, timeout=timeout)

    async def announce(self, addresses: list[str]) -> httpx.Response:
        response = await self.http.post(self.server.base, json={"addresses": addresses})
        self._check_pin(response)
        return response

    async def lookup(self, device: DeviceID) -> httpx.Response:
        response = await self.http.get(self.server.base, params={"device": str(device)})
        self._check_pin(response)
        return response

    async def aclose(self) -> None:
        await self.http.aclose()

    def _check_pin(self, response: httpx.Response) -> None:
        pin = self.server.pin
        if pin is None:
            return
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        got = DeviceID.from_cert_der(der) if der else None
        if got != pin:
            raise PinMismatchError(
                f"the server's certificate is {got or 'missing'}, not the pinned {pin}"
            )
