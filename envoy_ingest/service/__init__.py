"""Running as a service: Prometheus metrics (``metrics``), the ``/healthz`` and
``/metrics`` listener (``health``) and logging with secret redaction
(``logging``)."""
