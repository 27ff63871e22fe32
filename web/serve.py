"""Running the app under gunicorn from the ``socreg`` command."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, factory, options):
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._factory()


def run_gunicorn(
    factory, *, host: str, port: int, workers: int = 2, threads: int = 4, worker_connections: int | None = None
) -> None:
    """Serve the WSGI app built by ``factory`` until interrupted.

    ``worker_connections`` caps the connections one worker process holds (gunicorn's default is
    1000). A gthread worker accepts every connection it can, and keeps a kept-alive one for good:
    a few long-lived client connections (a proxy's upstream keep-alive pool, API clients) may all
    land in one process, whose interpreter lock then caps throughput while the other workers
    idle. A cap a little above ``threads`` spreads them; at ``threads`` or below, connections are
    not kept alive. Idle kept-alive connections count towards it until they time out, so leave it
    unset where many browsers connect directly."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-",
        "timeout": 120,
    }
    if worker_connections:
        options["worker_connections"] = worker_connections
    _Gunicorn(factory, options).run()
