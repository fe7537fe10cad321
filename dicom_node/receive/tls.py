"""TLS for the DICOM listener, from the `[node.tls]` settings."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from monitor.settings import TLSSettings


class _DeferredHandshakeContext(ssl.SSLContext):
    """Server context whose handshake runs on first read, in the association's own thread.

    pynetdicom wraps accepted sockets inside its single accept loop; with the default eager
    handshake one client that connects and stays silent would stall every other connection.
    """

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(sock, *args, **kwargs)


def server_context(tls: TLSSettings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when TLS is off.

    TLS 1.2 is the floor (BCP 195); with `client_ca_file` set, peers without a certificate
    from that file are refused during the handshake.
    Raises ValueError with the file name if a certificate or key cannot be loaded.
    """
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None  # checked by TLSSettings
    context = _DeferredHandshakeContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as exc:  # ssl.SSLError is an OSError too
        files = f"{tls.cert_file}, {tls.key_file}"
        raise ValueError(f"cannot load TLS certificate/key {files}: {exc}") from exc
    if tls.client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(tls.client_ca_file)
        except OSError as exc:
            raise ValueError(f"cannot load TLS client CA {tls.client_ca_file}: {exc}") from exc
    return context
