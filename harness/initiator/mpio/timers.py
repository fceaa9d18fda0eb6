"""MPIO timers: the knobs of Windows MPIO/MSDSM and open-iscsi + dm-multipath, by name.

A cluster's failover time is decided by a handful of timers in the host's
multipath stack. ``MpioTimers`` carries them under the names administrators set
in production, so a user can copy their site's values into the inventory and
the harness fails over on the same clock. Every duration says its unit (``_s``).

The model: each timer drives exactly one mechanism of
:class:`harness.initiator.mpio.device.MultipathDevice`.

================================  ===================================================
timer                             what it does in the device
================================  ===================================================
``path_verify_enabled`` and       Windows PathVerifyEnabled / PathVerificationPeriod,
``path_verification_period_s``    dm-multipath ``polling_interval``: TEST UNIT READY
                                  on every healthy path at this period.
``noop_out_interval_s`` and       open-iscsi ``noop_out_interval``/``noop_out_timeout``
``noop_out_timeout_s``            (Windows ``EnableNOPOut``): a NOP-Out ping on every
                                  healthy path; no answer in time fails the path.
                                  0 disables the ping.
``disk_timeout_s``                Windows Disk ``TimeOutValue`` (the per-command SCSI
                                  timeout): a command unanswered this long fails its
                                  path and is re-driven.
``link_down_time_s``,             Windows ``LinkDownTime``, open-iscsi
``replacement_timeout_s``,        ``replacement_timeout``, dm-multipath
``fast_io_fail_tmo_s``            ``fast_io_fail_tmo``: the three stacks' names for the
                                  same role, how long I/O stays held on a path whose
                                  connection dropped (while it tries to reconnect)
                                  when no other path is usable; with one, the I/O is
                                  re-driven there at once. ``None`` means "not set by
                                  this stack"; the shortest one set applies
                                  (:attr:`path_hold_s`).
``retry_count``,                  Windows RetryCount / RetryInterval: retries of an
``retry_interval_s``              I/O that failed with a retryable condition on a
                                  live path (BUSY, TASK SET FULL, UNIT ATTENTION).
                                  ``retry_interval_s`` is also the first reconnect
                                  back-off step.
``delay_between_reconnect_s``     Windows iSCSI ``DelayBetweenReconnect``: the cap on
                                  the reconnect back-off of a failed path.
``use_custom_path_recovery_time``  Windows UseCustomPathRecoveryTime /
``path_recovery_interval_s``      PathRecoveryInterval: when enabled, the cap on the
                                  reconnect back-off instead.
``pdo_remove_period_s``           Windows PDORemovePeriod (dm-multipath
                                  ``no_path_retry`` x ``polling_interval``): how long
                                  I/O is queued while *no* path is usable before it
                                  fails to the caller with ``AllPathsDown``.
``login_timeout_s``               open-iscsi ``login_timeout``: one login attempt.
================================  ===================================================

Defaults: Windows fields carry Windows defaults, open-iscsi fields open-iscsi
defaults (reference notes ``validation-and-ha.md`` section 3). The presets
:meth:`MpioTimers.windows_default` and :meth:`MpioTimers.open_iscsi_default`
configure one stack faithfully (the other stack's knobs off); a site's values come
from the inventory through :meth:`MpioTimers.from_mapping`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import SplitbrainError


class TimerConfigError(SplitbrainError):
    """An MPIO timer set that names an unknown timer or carries an impossible value."""


@dataclass(frozen=True)
class MpioTimers:
    """The timers of one multipath device (see the module docstring for each role)."""

    path_verify_enabled: bool = False
    path_verification_period_s: float = 30.0
    noop_out_interval_s: float = 5.0
    noop_out_timeout_s: float = 5.0
    disk_timeout_s: float = 60.0
    link_down_time_s: float | None = 15.0
    replacement_timeout_s: float | None = 120.0
    fast_io_fail_tmo_s: float | None = None
    retry_count: int = 3
    retry_interval_s: float = 1.0
    delay_between_reconnect_s: float = 5.0
    use_custom_path_recovery_time: bool = False
    path_recovery_interval_s: float = 40.0
    pdo_remove_period_s: float = 20.0
    login_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_enabled") or f.name.startswith("use_"):
                if not isinstance(value, bool):
                    raise TimerConfigError(
                        f"MPIO timer {f.name} must be true or false, got {value!r}; "
                        "fix it in the inventory's [devices.*.mpio] table"
                    )
                continue
            if value is None and f.name in _STACK_SPECIFIC:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TimerConfigError(
                    f"MPIO timer {f.name} must be a number, got {value!r}; "
                    "fix it in the inventory's [devices.*.mpio] table"
                )
            if not math.isfinite(value) or value < 0:
                raise TimerConfigError(
                    f"MPIO timer {f.name} must be a finite number >= 0, got {value!r}; "
                    "fix it in the inventory's [devices.*.mpio] table"
                )
            if f.name == "retry_count" and value != int(value):
                raise TimerConfigError(
                    f"MPIO timer retry_count must be a whole number, got {value!r}"
                )
        for name in ("disk_timeout_s", "login_timeout_s"):
            if getattr(self, name) == 0:
                raise TimerConfigError(
                    f"MPIO timer {name} is 0: every command or login would time out "
                    "at once; give it a positive number of seconds"
                )
        if self.path_verify_enabled and self.path_verification_period_s == 0:
            raise TimerConfigError(
                "MPIO path verification is enabled with path_verification_period_s = 0; "
                "set a positive period or disable path_verify_enabled"
            )
        if self.noop_out_interval_s > 0 and self.noop_out_timeout_s == 0:
            raise TimerConfigError(
                "MPIO noop_out_interval_s is set but noop_out_timeout_s is 0; "
                "give the NOP-Out ping a positive timeout or set the interval to 0"
            )

    # -- the roles, resolved -------------------------------------------------

    @property
    def path_hold_s(self) -> float:
        """How long I/O waits for its dropped path while no other path is usable."""
        set_values = [
            v
            for v in (self.link_down_time_s, self.replacement_timeout_s, self.fast_io_fail_tmo_s)
            if v is not None
        ]
        return float(min(set_values)) if set_values else 0.0

    @property
    def reconnect_backoff_max_s(self) -> float:
        """The cap of the exponential back-off between reconnect attempts of a path."""
        if self.use_custom_path_recovery_time:
            return float(self.path_recovery_interval_s)
        return float(self.delay_between_reconnect_s)

    @property
    def reconnect_backoff_min_s(self) -> float:
        """The first reconnect back-off step (RetryInterval), never above the cap."""
        return float(min(self.retry_interval_s, self.reconnect_backoff_max_s))

    @property
    def probe_interval_s(self) -> float | None:
        """Period of the path checker on healthy paths, or None when no checker runs."""
        periods = []
        if self.noop_out_interval_s > 0:
            periods.append(self.noop_out_interval_s)
        if self.path_verify_enabled:
            periods.append(self.path_verification_period_s)
        return float(min(periods)) if periods else None

    @property
    def probe_timeout_s(self) -> float:
        """How long one path-checker probe may take before the path is failed."""
        if self.noop_out_interval_s > 0:
            return float(self.noop_out_timeout_s)
        return float(self.disk_timeout_s)

    # -- presets and construction ---------------------------------------------

    @classmethod
    def windows_default(cls) -> MpioTimers:
        """Windows Server MPIO + MSDSM + Microsoft iSCSI initiator out of the box."""
        return cls(
            path_verify_enabled=False,
            path_verification_period_s=30.0,
            noop_out_interval_s=0.0,  # EnableNOPOut = 0
            noop_out_timeout_s=5.0,
            disk_timeout_s=60.0,
            link_down_time_s=15.0,
            replacement_timeout_s=None,
            fast_io_fail_tmo_s=None,
            retry_count=3,
            retry_interval_s=1.0,
            delay_between_reconnect_s=5.0,
            use_custom_path_recovery_time=False,
            path_recovery_interval_s=40.0,
            pdo_remove_period_s=20.0,
            login_timeout_s=15.0,
        )

    @classmethod
    def open_iscsi_default(cls) -> MpioTimers:
        """open-iscsi (iscsid.conf) under dm-multipath with its upstream defaults.

        The TUR checker runs every ``polling_interval`` (5 s); ``fast_io_fail_tmo``
        (5 s) overrides ``replacement_timeout`` (120 s) for multipathed sessions;
        ``no_path_retry`` defaults to ``fail``, so I/O fails as soon as no path is
        left (``pdo_remove_period_s = 0``). The SCSI device timeout is 30 s.
        """
        return cls(
            path_verify_enabled=True,
            path_verification_period_s=5.0,
            noop_out_interval_s=5.0,
            noop_out_timeout_s=5.0,
            disk_timeout_s=30.0,
            link_down_time_s=None,
            replacement_timeout_s=120.0,
            fast_io_fail_tmo_s=5.0,
            retry_count=3,
            retry_interval_s=1.0,
            delay_between_reconnect_s=5.0,
            use_custom_path_recovery_time=False,
            path_recovery_interval_s=40.0,
            pdo_remove_period_s=0.0,
            login_timeout_s=15.0,
        )

    @classmethod
    def preset(cls, name: str) -> MpioTimers:
        """A preset by name: ``windows`` or ``open-iscsi``."""
        presets = {"windows": cls.windows_default, "open-iscsi": cls.open_iscsi_default}
        try:
            return presets[name]()
        except KeyError:
            raise TimerConfigError(
                f"unknown MPIO timer preset {name!r}; use one of {', '.join(sorted(presets))}"
            ) from None

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, base: MpioTimers | None = None
    ) -> MpioTimers:
        """Timers from an inventory table; ``preset = "windows"`` picks the base.

        Keys are the field names above. Unknown keys are refused with the list of
        known ones, so a typo never silently leaves a production timer at default.
        """
        values = dict(values)
        start = base
        if "preset" in values:
            start = cls.preset(str(values.pop("preset")))
        if start is None:
            start = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TimerConfigError(
                f"unknown MPIO timer(s) {', '.join(unknown)}; known timers are "
                f"{', '.join(sorted(known))} (and 'preset'); units are in the name (_s)"
            )
        return dataclasses.replace(start, **values)

    def to_mapping(self) -> dict[str, Any]:
        """The timers as a plain dict (for reports and the inventory round trip)."""
        return dataclasses.asdict(self)


_STACK_SPECIFIC = frozenset({"link_down_time_s", "replacement_timeout_s", "fast_io_fail_tmo_s"})
