"""The test support, a pytest plugin (``pytest_plugins`` in tests/conftest.py).

- :mod:`tests.support.servers`: real servers (InfluxDB 1.x, VictoriaMetrics)
  and their fixtures;
- :mod:`tests.support.fakes`: one fake of each thing that cannot run for real
  here (a scripted InfluxDB, the simulator's gateway and cloud in-process, a
  clock);
- :mod:`tests.support.builders`: points and expected rows built by hand;
- :mod:`tests.support.markers`: the ``servers`` marker, set on every test that
  starts a server, so that ``pytest -m "not servers"`` is a fast loop.
"""
