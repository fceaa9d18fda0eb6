"""MpioTimers: presets, roles resolved from the two stacks' knobs, and strict parsing."""

from __future__ import annotations

import dataclasses

import pytest

from harness.errors import SplitbrainError
from harness.initiator.mpio.timers import MpioTimers, TimerConfigError


def test_windows_preset_carries_the_documented_defaults():
    t = MpioTimers.windows_default()
    assert t.pdo_remove_period_s == 20.0
    assert (t.retry_count, t.retry_interval_s) == (3, 1.0)
    assert t.link_down_time_s == 15.0
    assert t.path_recovery_interval_s == 40.0
    assert t.path_verification_period_s == 30.0 and not t.path_verify_enabled
    # EnableNOPOut = 0 and path verification off: no path checker runs
    assert t.probe_interval_s is None
    assert t.path_hold_s == 15.0
    assert t.reconnect_backoff_max_s == 5.0  # DelayBetweenReconnect


def test_open_iscsi_preset_lets_fast_io_fail_override_replacement_timeout():
    t = MpioTimers.open_iscsi_default()
    assert (t.noop_out_interval_s, t.noop_out_timeout_s) == (5.0, 5.0)
    assert t.replacement_timeout_s == 120.0
    assert t.path_hold_s == 5.0  # fast_io_fail_tmo wins over replacement_timeout
    assert t.probe_interval_s == 5.0
    assert t.probe_timeout_s == 5.0
    assert t.pdo_remove_period_s == 0.0  # no_path_retry = fail


def test_class_defaults_name_both_stacks_with_their_own_defaults():
    t = MpioTimers()
    assert t.pdo_remove_period_s == 20.0 and t.link_down_time_s == 15.0
    assert t.noop_out_interval_s == 5.0 and t.replacement_timeout_s == 120.0
    assert t.path_hold_s == 15.0


def test_every_duration_field_says_its_unit():
    for f in dataclasses.fields(MpioTimers):
        if f.type in ("bool",) or f.name == "retry_count":
            continue
        assert f.name.endswith("_s"), f.name


def test_custom_path_recovery_time_caps_the_reconnect_backoff():
    t = MpioTimers.from_mapping(
        {"preset": "windows", "use_custom_path_recovery_time": True, "path_recovery_interval_s": 2}
    )
    assert t.reconnect_backoff_max_s == 2.0
    assert t.reconnect_backoff_min_s == 1.0
    t = dataclasses.replace(t, retry_interval_s=5.0)
    assert t.reconnect_backoff_min_s == 2.0  # never above the cap


def test_from_mapping_overrides_a_preset():
    t = MpioTimers.from_mapping({"preset": "open-iscsi", "noop_out_interval_s": 1})
    assert t.noop_out_interval_s == 1
    assert t.fast_io_fail_tmo_s == 5.0


def test_from_mapping_refuses_unknown_names_and_lists_the_known_ones():
    with pytest.raises(TimerConfigError) as err:
        MpioTimers.from_mapping({"PDORemovePeriod": 20, "link_down_time": 3})
    message = str(err.value)
    assert "PDORemovePeriod" in message and "link_down_time" in message
    assert "pdo_remove_period_s" in message
    assert isinstance(err.value, SplitbrainError)
    assert "\n" not in message


@pytest.mark.parametrize(
    "values",
    [
        {"pdo_remove_period_s": -1},
        {"disk_timeout_s": 0},
        {"retry_count": 1.5},
        {"noop_out_interval_s": "5"},
        {"path_verify_enabled": "yes"},
        {"link_down_time_s": float("inf")},
        {"path_verify_enabled": True, "path_verification_period_s": 0},
        {"noop_out_interval_s": 5, "noop_out_timeout_s": 0},
        {"preset": "solaris"},
    ],
)
def test_impossible_values_are_refused(values):
    with pytest.raises(TimerConfigError):
        MpioTimers.from_mapping(values)


def test_unset_stack_timers_fall_back_to_no_hold():
    t = MpioTimers(link_down_time_s=None, replacement_timeout_s=None, fast_io_fail_tmo_s=None)
    assert t.path_hold_s == 0.0


def test_round_trip_through_a_mapping():
    t = MpioTimers.open_iscsi_default()
    assert MpioTimers.from_mapping(t.to_mapping()) == t
