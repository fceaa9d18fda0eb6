"""The one iscsi:// URL parser and the ISID mints."""

import os

import pytest

from harness.iscsi.names import IscsiUrlError, IsidMint, parse_iscsi_url


def test_a_full_url_needs_target_and_lun_a_partial_one_does_not():
    with pytest.raises(IscsiUrlError, match="path must be /<target iqn>/<lun>"):
        parse_iscsi_url("iscsi://h:3261/iqn.x")
    u = parse_iscsi_url("iscsi://h:3261/iqn.x", partial=True)
    assert (u.target, u.lun, str(u)) == ("iqn.x", None, "iscsi://h:3261/iqn.x")
    assert str(parse_iscsi_url("iscsi://h", partial=True)) == "iscsi://h:3260"


def test_chap_needs_user_and_secret_and_the_secret_is_never_shown():
    with pytest.raises(IscsiUrlError, match="both user and secret"):
        parse_iscsi_url("iscsi://alice@h/iqn.x/0")
    u = parse_iscsi_url("iscsi://alice:pw42@h/iqn.x/0")
    assert u.secret == "pw42" and "pw42" not in str(u) and "pw42" not in repr(str(u))


def test_a_mint_gives_distinct_random_format_isids_naming_its_qualifier_and_process():
    mint = IsidMint(0x42)
    isids = [mint.isid() for _ in range(100)]
    assert len(set(isids)) == 100
    assert all(i >> 40 == 0x80 and (i >> 32) & 0xFF == 0x42 for i in isids)
    assert all((i >> 16) & 0xFFFF == os.getpid() & 0xFFFF for i in isids)
    assert mint.isid(7) & 0xFFFF == 7
    with pytest.raises(ValueError, match="8 bits"):
        IsidMint(0x100)
