"""The base layer every stage reports through: Prometheus metrics (metrics.py,
with the per-gateway series of gateway_series.py) and logging with its secret
redaction (logging.py). It imports nothing of the stages (only point.py's
types), so envoy/, energy/, sink/ and worker/ may all import it; the HTTP
listener that serves /metrics and the health state live in service/."""
