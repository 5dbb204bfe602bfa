"""Running as a service: the ``/healthz``, ``/readyz``, ``/gateways`` and
``/metrics`` listener (``server``) and the health state it reports
(``health``). Metrics and logging are the base layer in
:mod:`envoy_ingest.telemetry`."""
