"""A simulated Envoy / IQ Gateway and Enphase cloud, for the quick start, the
tests and the benchmarks.

::

    from envoy_ingest.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(family="modern", cts="3phase", batteries="iq")) as sim:
        token = sim.issue_token()
        ...  # GET f"{sim.url}/production.json?details=1" with a Bearer token

``config.py`` what to simulate; ``site.py`` + ``model.py`` the site and its day
(pure functions of simulated time); ``render_*.py`` the JSON shapes of real
firmware; ``synthetic.py`` which endpoint answers what; ``fixtures.py`` recorded
gateways; ``auth.py`` digest and JWT; ``gateway.py`` faults, latency, reboots and
the request record; ``cloud.py`` the fake Enphase cloud; ``httpbase.py`` and
``tls.py`` the servers; ``simulator.py`` the whole.
"""

from envoy_ingest.simulator.cloud import FakeCloud
from envoy_ingest.simulator.config import SimulatorConfig
from envoy_ingest.simulator.fixtures import path_to_fixture_name
from envoy_ingest.simulator.simulator import Simulator, serve_forever

__all__ = ["FakeCloud", "Simulator", "SimulatorConfig", "path_to_fixture_name", "serve_forever"]
