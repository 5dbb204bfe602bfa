"""What a settings reload (SIGHUP) changes: pure comparisons of two Settings;
and which of the settings' gateways this worker polls (its shard's share).

Taken on reload: the gateways (of the settings file and of ``gateways_file``:
added, removed and changed ones) and ``[schedule]``. Everything else is read
once at start and needs a restart; a reload that changes it says so in the
log and keeps the running value, so the sink (and its spool) is never rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings
from envoy_ingest.shard import select

#: Sections and keys a reload applies.
RELOADED = ("gateways", "gateways_file", "schedule")
#: Everything else: read once at start.
RESTART_ONLY = tuple(k for k in Settings.model_fields if k not in RELOADED)


@dataclass(frozen=True, slots=True)
class GatewayChanges:
    added: list[GatewaySettings]
    removed: list[str]  # labels
    changed: list[GatewaySettings]  # the new settings of gateways whose settings changed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"


def gateway_changes(old: list[GatewaySettings], new: list[GatewaySettings]) -> GatewayChanges:
    """Gateways are matched by label (name, else serial, else host)."""
    before = {gw.label: gw for gw in old}
    after = {gw.label: gw for gw in new}
    return GatewayChanges(
        added=[gw for label, gw in after.items() if label not in before],
        removed=[label for label in before if label not in after],
        changed=[gw for label, gw in after.items() if label in before and before[label] != gw],
    )


def needs_restart(old: Settings, new: Settings) -> list[str]:
    """The keys that differ but are only read at start."""
    return [key for key in RESTART_ONLY if getattr(old, key) != getattr(new, key)]


def own_share(settings: Settings) -> Settings:
    """``settings`` with only the gateways of its shard (all of them without one)."""
    if settings.shard is None:
        return settings
    return settings.model_copy(update={"gateways": select(settings.gateways, settings.shard_spec)})
