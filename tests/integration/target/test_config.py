"""The node configuration: every mistake is a ConfigError that names the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.target.config import ConfigError, load_config, parse_config, parse_size

IQN = "iqn.2026-11.org.splitbrain:node1.ha1"


def base(tmp_path: Path, **target: object) -> dict:
    t = {"iqn": IQN, "lun": [{"lun": 0, "image": "a.img", "size": "1MiB"}], **target}
    return {"node": {"name": "n1", "data_dir": str(tmp_path)},
            "portal": [{"address": "127.0.0.1", "port": 0}],
            "target": [t]}


def test_minimal_config_resolves_images_under_data_dir(tmp_path: Path) -> None:
    cfg = parse_config(base(tmp_path))
    lun = cfg.targets[0].luns[0]
    assert lun.image == tmp_path / "a.img"
    assert lun.size == 1 << 20
    assert lun.naa.startswith("3") and len(lun.naa) == 16
    assert cfg.management.host == "127.0.0.1" and cfg.management.port == 0


@pytest.mark.parametrize(("text", "size"), [("1GiB", 1 << 30), ("512MiB", 512 << 20),
                                            ("10G", 10 * 10**9), ("4096", 4096), (8192, 8192)])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d["target"][0]["lun"][0].update(size="1 parsec"), "target[0].lun[0].size"),
    (lambda d: d["target"][0]["lun"][0].update(size="1000"), "target[0].lun[0].size"),
    (lambda d: d["target"][0].update(iqn="not-an-iqn"), "target[0].iqn"),
    (lambda d: d["portal"][0].update(address="localhost"), "portal[0].address"),
    (lambda d: d.update(portal=[]), "portal"),
    (lambda d: d["node"].pop("data_dir"), "node.data_dir"),
    (lambda d: d["target"][0]["lun"].append(dict(d["target"][0]["lun"][0])),
     "target[0].lun[1].lun"),
    (lambda d: d["target"][0].update(chap={"username": "u", "secret": "inline-secret-123"}),
     "target[0].chap.secret"),
    (lambda d: d["target"][0].update(colour="blue"), "target[0].colour"),
    (lambda d: d.update(management={"listen": "127.0.0.1"}), "management.listen"),
    (lambda d: d["target"][0]["lun"][0].update(naa="6abc"), "target[0].lun[0].naa"),
])
def test_mistakes_name_their_key(tmp_path: Path, mutate, key: str) -> None:
    data = base(tmp_path)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="node.toml", env={})
    assert info.value.key == key
    assert str(info.value).startswith(f"node.toml: {key}: ")
    assert "\n" not in str(info.value)


def test_chap_secret_from_env_and_from_600_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "mutual.secret"
    secret_file.write_text("target-secret-456\n")
    os.chmod(secret_file, 0o600)
    data = base(tmp_path, chap={"username": "hv", "secret": "${HA1_CHAP}",
                                "mutual_username": "tgt",
                                "mutual_secret_file": str(secret_file)})
    cfg = parse_config(data, env={"HA1_CHAP": "initiator-secret-123"})
    chap = cfg.targets[0].chap
    assert chap is not None and chap.mutual
    assert (chap.secret, chap.mutual_secret) == ("initiator-secret-123", "target-secret-456")
    assert "secret-123" not in repr(chap)
    os.chmod(secret_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        parse_config(data, env={"HA1_CHAP": "initiator-secret-123"})
    with pytest.raises(ConfigError, match="HA1_CHAP is not set"):
        parse_config(data, env={})


def test_acl_admits_listed_initiators_only(tmp_path: Path) -> None:
    cfg = parse_config(base(tmp_path, initiators=["iqn.1991-05.com.microsoft:hv1"]))
    t = cfg.targets[0]
    assert t.admits("IQN.1991-05.com.microsoft:HV1")
    assert not t.admits("iqn.1991-05.com.microsoft:hv2")


def test_load_config_reports_syntax_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text("[node\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
