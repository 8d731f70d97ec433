"""The HTTP control plane: inspect and reconfigure a live registry, and export its
Prometheus metrics.

Needs the ``control`` extra (``pip install 'ciris-actors[control]'``)::

    async with open_registry() as registry:
        async with serve_control_api(registry, port=8080, token=token) as server:
            print("control plane on", server.url)
            await trio.sleep_forever()

:func:`create_app` builds the ASGI app alone, to mount in a server of your own. See
``docs/control-plane.md`` for the endpoints, authentication and metric names.
"""

from __future__ import annotations

try:
    import hypercorn  # noqa: F401
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by hand, not in the test venv
    raise ImportError(
        f"ciris_actors.control needs the 'control' extra ({exc.name} is missing):"
        " pip install 'ciris-actors[control]'"
    ) from exc

from ._app import create_app, event_as_dict
from ._metrics import METRIC_NAMES, METRICS, MetricSpec, RegistryCollector, Scrape, metric_table
from ._openapi import openapi_document
from ._server import ControlServer, serve_control_api

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "ControlServer",
    "MetricSpec",
    "RegistryCollector",
    "Scrape",
    "create_app",
    "event_as_dict",
    "metric_table",
    "openapi_document",
    "serve_control_api",
]
