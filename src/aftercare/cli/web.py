"""`aftercare web`: the web app alone, in N uvicorn worker processes (production; docker-compose's `app`).

The same as `uvicorn --factory aftercare.web.app:create_app --workers N`, except that the listening socket says
it is TCP: uvicorn's multi-process mode (0.54) binds it with protocol 0, accepted connections inherit that, and
asyncio then leaves Nagle's algorithm on, so every keep-alive request after the first waits ~40 ms for a delayed
ACK (uvicorn issue #3149; measured here: 48 ms at every percentile of the SMS webhook, against 5 ms).
"""

from __future__ import annotations

import socket

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess


class _TcpConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock


def web(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind"),
    port: int = typer.Option(8000, "--port", help="port to bind"),
    workers: int = typer.Option(2, "--workers", min=1, help="worker processes"),
    proxy_headers: bool = typer.Option(False, "--proxy-headers", help="trust X-Forwarded-* from the proxy"),
    forwarded_allow_ips: str = typer.Option("127.0.0.1", "--forwarded-allow-ips",
                                            help="proxies whose X-Forwarded-* are trusted ('*': any)"),
) -> None:
    """Serve the web app only (no ticker, no Prefect server; run `aftercare inbound` beside it)."""
    config = _TcpConfig("aftercare.web.app:create_app", factory=True, host=host, port=port, workers=workers,
                        proxy_headers=proxy_headers, forwarded_allow_ips=forwarded_allow_ips)
    if workers == 1:  # uvicorn builds this listener from getaddrinfo: already TCP
        uvicorn.Server(config).run()
    else:
        Multiprocess(config, sockets=[config.bind_socket()]).run()


def register(app: typer.Typer) -> None:
    app.command("web")(web)
