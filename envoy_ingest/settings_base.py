"""What every settings section shares: frozen, no unknown keys, and secrets that
can be read from files (``*_file`` keys, for Docker secrets and systemd
credentials)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: str, key: str) -> SecretStr:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {key} {path!r}: {exc.strerror or exc}") from None
    value = text.strip()
    if not value:
        raise ValueError(f"{key} {path!r} is empty")
    return SecretStr(value)


def load_secret_files(model: BaseModel, names: tuple[str, ...]) -> None:
    """For each ``name``, read ``name_file`` into ``name`` unless ``name`` is set."""
    for name in names:
        path = getattr(model, f"{name}_file")
        if path is None:
            continue
        if getattr(model, name) is not None:
            raise ValueError(f"set either {name} or {name}_file, not both")
        object.__setattr__(model, name, _read_secret_file(path, f"{name}_file"))
