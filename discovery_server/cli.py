"""``p2psync-discovery``: run the global discovery server (``python -m discovery_server``)."""

from __future__ import annotations

import logging
import signal
import time
from functools import partial

import click
import trio

from p2psync.errors import P2PSyncError

from .logsetup import setup_logging
from .server import serve_discovery
from .service import ServerSettings
from .stores import open_store
from .supervisor import supervise
from .worker import WorkerConfig


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--listen",
    default="127.0.0.1:22027",
    show_default=True,
    help="HOST:PORT to listen on; use 0.0.0.0:22027 (or [::]:22027) in production.",
)
@click.option(
    "--store",
    "store_spec",
    default="memory",
    show_default=True,
    help="'memory'; a PATH.sqlite (memory + periodic snapshot, reloaded at start); "
    "or redis://HOST:PORT/DB (shared by several instances).",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False),
    help="TLS certificate (PEM) to serve HTTPS; needs --key.",
)
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.option(
    "--url",
    help="Public base URL clients use (announcements are signed over it). "
    "Default: derived from the bound address.",
)
@click.option(
    "--ttl",
    type=click.IntRange(min=60),
    default=3600,
    show_default=True,
    help="Seconds an announced address stays valid.",
)
@click.option(
    "--reannounce",
    type=click.IntRange(min=10),
    default=1800,
    show_default=True,
    help="Reannounce-After sent to devices, in seconds (keep below --ttl).",
)
@click.option(
    "--retry-after",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Retry-After on lookups of unknown devices, in seconds.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Requests per second allowed per source IP (IPv6: per /64).",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Requests a source may make in a burst.",
)
@click.option(
    "--window",
    type=click.IntRange(min=5),
    default=120,
    show_default=True,
    help="Seconds of clock skew accepted in announcement timestamps.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=65536,
    show_default=True,
    help="Largest announcement body in bytes (413 beyond).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a connection has to send a request head (also the idle time between "
    "requests and the TLS handshake's limit).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a request body may take in all (408 beyond).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Open connections at most (accepts pause beyond; lowered to stay 64 under the "
    "file-handle limit).",
)
@click.option(
    "--max-connections-per-address",
    "max_per_address",
    type=click.IntRange(min=0),
    help="Open connections at most from one IP (IPv6: /64); more are closed at once. "
    "0 = no cap. Default: 32, or 0 with --trust-forwarded (the proxy is one address).",
)
@click.option(
    "--trust-forwarded",
    is_flag=True,
    help="Take the client IP from X-Forwarded-For (last hop). Only behind your own proxy.",
)
@click.option(
    "--snapshot-interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between expiry sweeps and SQLite snapshots.",
)
@click.option(
    "--redis-prefix", default="p2psync-disco:", show_default=True, help="Key namespace in Redis."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes sharing the port (SO_REUSEPORT), e.g. one per core. With "
    "--store memory each holds a replica of the store, kept in step by the others.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def main(
    listen: str,
    store_spec: str,
    cert: str | None,
    key: str | None,
    url: str | None,
    ttl: int,
    reannounce: int,
    retry_after: int,
    rate: float,
    burst: int,
    window: int,
    max_body: int,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    max_per_address: int | None,
    trust_forwarded: bool,
    snapshot_interval: float,
    redis_prefix: str,
    workers: int,
    log_level: str,
) -> None:
    """Run p2psync's global discovery server.

    Devices POST signed announcements of their addresses to /v1/announce; anyone can
    GET /v1/lookup?device=ID. Also /healthz and /metrics (Prometheus). SIGINT or SIGTERM
    stops it cleanly (a SQLite store is snapshotted on the way out).
    """
    if (cert is None) != (key is None):
        raise click.UsageError("--cert and --key go together")
    if workers > 1 and not (store_spec == "memory" or "://" in store_spec):
        raise click.UsageError("--workers takes --store memory or redis:// (not a snapshot file)")
    setup_logging(log_level)
    if reannounce >= ttl:
        logging.getLogger(__name__).warning(
            "--reannounce %d >= --ttl %d: records will lapse between announcements", reannounce, ttl
        )
    settings = ServerSettings(
        url=url,
        ttl=ttl,
        reannounce_after=reannounce,
        retry_after=retry_after,
        window=window,
        rate=rate,
        burst=burst,
        max_body=max_body,
        trust_forwarded=trust_forwarded,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        max_per_address=(0 if trust_forwarded else 32)
        if max_per_address is None
        else max_per_address,
    )

    def make_config(index: int, bound: str, sibling_fds: list[int]) -> WorkerConfig:
        return WorkerConfig(
            index, settings, bound, store_spec, sibling_fds, cert, key,
            snapshot_interval, redis_prefix, log_level,
        )  # fmt: skip

    def on_ready(urls: list[str]) -> None:
        shown = settings.url or urls[0]
        click.echo(f"p2psync-discovery listening on {' '.join(urls)} (public URL {shown}, "
                   f"{workers} workers)")  # fmt: skip

    try:
        if workers > 1:
            trio.run(partial(supervise, workers, listen, make_config, on_ready=on_ready))
        else:
            trio.run(_run, settings, listen, store_spec, cert, key, snapshot_interval, redis_prefix)
    except P2PSyncError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc}") from exc


async def _run(
    settings: ServerSettings,
    listen: str,
    store_spec: str,
    cert: str | None,
    key: str | None,
    snapshot_interval: float,
    redis_prefix: str,
) -> None:
    stop = trio.Event()
    async with open_store(
        store_spec, clock=time.time, sweep_interval=snapshot_interval, redis_prefix=redis_prefix
    ) as store:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, stop)
            binds, service = await nursery.start(
                lambda task_status: serve_discovery(
                    settings,
                    store,
                    listen=listen,
                    certfile=cert,
                    keyfile=key,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            click.echo(
                f"p2psync-discovery listening on {' '.join(binds)} (public URL {service.url})"
            )


async def _stop_on_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
            stop.set()
            return
