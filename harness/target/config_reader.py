"""Reading a node's TOML: typed values at a key path, every mistake a ``ConfigError``.

``ConfigReader`` walks a parsed TOML table and turns each wrong value into a
:class:`ConfigError` naming the file, the key and how to fix it; secrets come
only from ``${ENV}`` references or a secrets file only its owner can read.
``harness.target.config`` (the node's sections) and
``harness.target.ha.node_config`` (the ``[[ha_device]]`` tables) both build on
it, so neither imports the other's internals.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ConfigError(SplitbrainError):
    """The node configuration is wrong: says which file, which key and how to fix it."""

    exit_code = 2

    def __init__(self, source: str, key: str, problem: str, hint: str) -> None:
        self.source, self.key, self.problem, self.hint = source, key, problem, hint
        super().__init__(f"{source}: {key}: {problem}; {hint}")


class ConfigReader:
    """Walks the parsed TOML and turns every mistake into a ConfigError with its key path."""

    def __init__(self, source: str, env: Mapping[str, str], base: Path) -> None:
        self.source, self.env, self.base = source, env, base

    def fail(self, key: str, problem: str, hint: str) -> ConfigError:
        return ConfigError(self.source, key, problem, hint)

    def table(self, raw: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a table, got {type(raw).__name__}",
                            f"write it as [{key}] with key = value lines")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0], "unknown key",
                            f"allowed keys here: {', '.join(sorted(allowed))}")
        return raw

    def string(self, raw: Mapping[str, Any], key: str, name: str, default: str | None = None,
               required: bool = False) -> str:
        path = f"{key}.{name}" if key else name
        if name not in raw:
            if required:
                raise self.fail(path, "missing", f"add {name} = \"...\" to [{key or 'top level'}]")
            return default if default is not None else ""
        value = raw[name]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(path, f"expected a non-empty string, got {value!r}",
                            f"write it as {name} = \"...\"")
        return value

    def integer(self, raw: Mapping[str, Any], key: str, name: str, default: int,
                lo: int, hi: int) -> int:
        path = f"{key}.{name}" if key else name
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(path, f"expected an integer in {lo}..{hi}, got {value!r}",
                            f"write it as {name} = {default}")
        return value

    def number(self, raw: Mapping[str, Any], key: str, name: str, default: float,
               lo: float, hi: float) -> float:
        path = f"{key}.{name}" if key else name
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise self.fail(path, f"expected a number in {lo:g}..{hi:g}, got {value!r}",
                            f"write it as {name} = {default:g}")
        return float(value)

    def secret(self, raw: Mapping[str, Any], key: str, name: str) -> str | None:
        """A secret from ``name = "${ENV}"`` or ``name_file = "path"``; never inline."""
        path = f"{key}.{name}"
        file_key = f"{name}_file"
        if name in raw and file_key in raw:
            raise self.fail(path, f"both {name} and {file_key} are set", "keep only one of them")
        if file_key in raw:
            file = self.path(raw[file_key], f"{key}.{file_key}")
            try:
                st = file.stat()
                text = file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self.fail(f"{key}.{file_key}", f"cannot read {file}: {exc.strerror}",
                                "create the secrets file or fix the path") from None
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise self.fail(f"{key}.{file_key}", f"{file} is readable by others",
                                f"run chmod 600 {file}")
            if not text:
                raise self.fail(f"{key}.{file_key}", f"{file} is empty", "write the secret in it")
            return text
        if name not in raw:
            return None
        value = raw[name]
        m = _ENV_REF.match(value) if isinstance(value, str) else None
        if not m:
            raise self.fail(path, "secrets must not be written in the config file",
                            f"write {name} = \"${{SOME_ENV}}\" or {file_key} = \"/path/600-file\"")
        if not self.env.get(m.group(1)):
            raise self.fail(path, f"environment variable {m.group(1)} is not set or empty",
                            f"export {m.group(1)}=... before starting the node")
        return self.env[m.group(1)]

    def path(self, value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a path string, got {value!r}", "write it as \"...\"")
        p = Path(os.path.expandvars(os.path.expanduser(value)))
        return p if p.is_absolute() else self.base / p


def read_address(reader: ConfigReader, key: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise reader.fail(key, f"{text!r} is not an IP address",
                          "use a literal address such as 127.0.0.1 or ::1") from None
