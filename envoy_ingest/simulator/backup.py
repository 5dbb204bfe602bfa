"""The simulated site off the grid: what carries the house during an outage.

An outage (``Faults.outage``, a window of simulated time) opens the IQ System
Controller's grid relay: nothing is imported or exported. The batteries cover
the house's deficit (down to ``VERY_LOW_SOC``, below the backup reserve that
holds on the grid) and take its surplus; a standby generator, where the site
has one, starts when the charge falls to its start level and stops at its stop
level (or when the grid comes back), supplying the house plus what the
batteries can take, up to its rating. What neither the batteries nor the
generator can give or take is shed (load) or curtailed (production) and is not
counted anywhere: the battery energy, the truth the tests compare against, is
exact.
"""

from __future__ import annotations

from dataclasses import dataclass

VERY_LOW_SOC = 5.0  # % the batteries keep in an outage (the gateway's very low SoC)


@dataclass(frozen=True, slots=True)
class Generator:
    """A standby generator (as 8.3.5169_with_generator's: auto start on charge)."""

    rating_w: float = 6000.0
    start_soc: float = 30.0
    stop_soc: float = 80.0


@dataclass(frozen=True, slots=True)
class Step:
    """One simulated step without grid."""

    battery_w: float  # + discharging
    generator_w: float
    generator_on: bool


def off_grid(
    level: float,
    need_w: float,
    generator_on: bool,
    *,
    capacity_wh: float,
    max_w: float,
    generator: Generator | None,
    hours: float,
) -> Step:
    """The batteries' and generator's power over one step of ``hours`` starting
    at charge ``level`` (%), the house needing ``need_w`` (consumption minus
    production; negative: a surplus)."""
    if generator is None:
        generator_on = False
    elif not generator_on and level <= generator.start_soc:
        generator_on = True
    elif generator_on and level >= generator.stop_soc:
        generator_on = False
    room = min(max_w, (100 - level) / 100 * capacity_wh / hours) if capacity_wh > 0 else 0.0
    gen_w = 0.0
    if generator is not None and generator_on:
        gen_w = min(generator.rating_w, max(0.0, need_w + room))
    want = need_w - gen_w
    if capacity_wh <= 0:
        battery = 0.0
    elif want >= 0:
        battery = min(want, max_w, max(0.0, (level - VERY_LOW_SOC) / 100 * capacity_wh / hours))
    else:
        battery = -min(-want, room)
    return Step(battery, gen_w, generator_on)
