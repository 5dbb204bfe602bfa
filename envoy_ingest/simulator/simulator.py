"""The simulated gateway (and its Enphase cloud) as one object to start and stop."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from envoy_ingest.envoy.firmware import parse_version
from envoy_ingest.simulator.auth import OWNER_LIFETIME, TokenAuthority
from envoy_ingest.simulator.cloud import FakeCloud
from envoy_ingest.simulator.config import SimulatorConfig
from envoy_ingest.simulator.faults import Faults
from envoy_ingest.simulator.fixtures import FixtureGateway
from envoy_ingest.simulator.gateway import Clock, GatewayApp, Source
from envoy_ingest.simulator.httpbase import BackgroundServer, Startable
from envoy_ingest.simulator.model import Model
from envoy_ingest.simulator.site import build_site
from envoy_ingest.simulator.synthetic import SyntheticGateway
from envoy_ingest.simulator.tls import Certificate, self_signed, server_context


class Simulator(Startable):
    """A gateway on ``config.host`` (``legacy``: http + digest; ``modern``: https +
    JWT), with a paired :class:`FakeCloud` on its own plain-http port.

    ``start()`` returns once both listen; ``stop()`` (or leaving a ``with``
    block) closes them. A config may be reused for several simulators.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        cfg = config or SimulatorConfig()
        self.config = cfg
        start = cfg.start_time if cfg.start_time is not None else time.time()
        self.clock = Clock(start, cfg.time_scale)
        self.model: Model | None = None
        self.faults: Faults | None = None  # counter faults (synthetic gateways only)
        source: Source
        if cfg.fixture is not None:
            fixture = FixtureGateway(Path(cfg.fixture))
            modern = fixture.modern if fixture.modern is not None else cfg.family == "modern"
            self.serial: str = fixture.serial or cfg.serial
            self.software: str = fixture.software or cfg.software
            source = fixture
            self.fixture: FixtureGateway | None = fixture
        else:
            self.model = Model(build_site(cfg, start), start)
            modern = cfg.family == "modern"
            self.serial = cfg.serial
            self.software = cfg.software
            synthetic = SyntheticGateway(self.model, cfg.software)
            self.faults = synthetic.faults
            source = synthetic
            self.fixture = None
        self.family = "modern" if modern else "legacy"
        self.authority = TokenAuthority(self.serial)
        self._app = GatewayApp(
            source,
            modern=modern,
            serial=self.serial,
            clock=self.clock,
            authority=self.authority,
            latency=cfg.latency,
        )
        self._cert: Certificate | None = self_signed(cfg.host, self.serial) if modern else None
        tls = server_context(self._cert) if self._cert else None
        self._server = BackgroundServer(self._app, cfg.host, cfg.port, tls)
        self.cloud = FakeCloud(self.authority, host=cfg.host, port=cfg.cloud_port)

    # lifecycle ---------------------------------------------------------------------

    def start(self) -> Simulator:
        if self.model is not None:
            self.model.reading(self.clock.now())  # tabulate the first days now
        self.clock.restart()
        self._server.start()
        try:
            self.cloud.start()
        except BaseException:
            self._server.stop()
            raise
        return self

    def stop(self) -> None:
        self._server.stop()
        self.cloud.stop()

    # where and what ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (legacy) or ``https://127.0.0.1:PORT`` (modern)."""
        return self._server.url

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: what a user puts in the gateway's ``host`` setting."""
        return self._server.netloc

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def firmware(self) -> str:
        """The firmware version without its letter, e.g. ``"8.2.4345"``."""
        version = parse_version(self.software)
        return ".".join(map(str, version)) if version else self.software

    @property
    def app(self) -> GatewayApp:
        """What answers the gateway's requests: serve it in-process, without the server."""
        return self._app

    @property
    def cert_fingerprint(self) -> str | None:
        """SHA-256 of the certificate (lowercase hex, no colons); None for legacy."""
        return self._cert.fingerprint if self._cert else None

    @property
    def cert_pem(self) -> bytes | None:
        return self._cert.cert_pem if self._cert else None

    # time ------------------------------------------------------------------------

    def now(self) -> float:
        """The simulated clock (unix seconds)."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward (tokens keep real time)."""
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        self.clock.advance(seconds)

    # tokens -------------------------------------------------------------------------

    def issue_token(self, lifetime: float = 3600, user: str = "owner") -> str:
        """A JWT this gateway accepts, as if pasted from the Enphase token page."""
        return self.authority.issue(lifetime, user)

    def revoke_tokens(self) -> None:
        """Refuse every token issued so far (as after a reboot); new ones work."""
        self.authority.revoke_all()

    # requests and faults -------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path with query) of every request received, in order (a copy)."""
        return self._app.requests

    def request_count(self, path: str | None = None) -> int:
        """Requests received; for ``path`` without a query, with any query."""
        return self._app.request_count(path)

    def clear_requests(self) -> None:
        self._app.clear_requests()

    def fail_next(self, path: str, status: int = 503, count: int = 1) -> None:
        """Answer the next ``count`` requests for ``path`` with ``status``."""
        self._app.add_rule(path, count, status)

    def drop_next(self, path: str, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests for ``path`` unanswered."""
        self._app.add_rule(path, count, 0)

    def slow(self, path: str, seconds: float) -> None:
        """Answer ``path`` (any query) ``seconds`` late, on top of the latency;
        0 makes it as fast as the others again (a slow endpoint, e.g. live reads)."""
        self._app.slow(path, seconds)

    def reboot(self, seconds: float) -> None:
        """For ``seconds`` (real time): legacy answers all-zero production, modern 503."""
        self._app.reboot(seconds)

    @property
    def latency(self) -> float:
        return self._app.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._app.latency = max(0.0, seconds)


def describe(sim: Simulator) -> str:
    """One line saying what runs where (no secret)."""
    what = f"recorded gateway {sim.fixture.directory.name}" if sim.fixture else "gateway"
    line = f"simulated {sim.family} {what} {sim.serial} (firmware {sim.firmware}) at {sim.url}"
    if sim.family == "modern":
        line += (
            f"; certificate sha256 {sim.cert_fingerprint}; Enphase cloud login "
            f"{sim.cloud.login_url}, token {sim.cloud.token_url}"
        )
    else:
        line += "; digest users envoy and installer with their default passwords"
    return line


def serve_forever(
    cfg: SimulatorConfig,
    print_fn: Callable[[str], object] = print,
    *,
    token_file: Path | None = None,
    stop: threading.Event | None = None,
    prepare: Callable[[Simulator], str | None] | None = None,
) -> None:
    """Run a simulator until Ctrl-C or SIGTERM (or ``stop`` is set), then stop it.

    ``token_file``: for a modern gateway, write a one-year owner token there
    (mode 0600) so a worker can use it. ``prepare``: called with the simulator
    before it starts (e.g. to schedule faults); a line it returns is printed.
    """
    if stop is None:
        stop = threading.Event()
    previous: Callable[[int, FrameType | None], object] | int | None = None
    in_main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    sim = Simulator(cfg)
    said = prepare(sim) if prepare is not None else None
    with sim:
        if in_main:
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            line = describe(sim) + (f"; {said}" if said else "")
            if token_file is not None and sim.family == "modern":
                fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(sim.issue_token(lifetime=OWNER_LIFETIME) + "\n")
                line += f"; token in {token_file}"
            print_fn(line)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if in_main and previous is not None:
                signal.signal(signal.SIGTERM, previous)
