"""The field tables are the one declaration of every BHS: the codec's classes and the
scapy layers are built from them and agree with them field by field."""

from __future__ import annotations

from typing import Any

import pytest

from harness.iscsi import bhs, codec, layers
from harness.iscsi.pdu import Pdu

FRAMING_BITS = 8 * 8  # byte 0, byte 1 and bytes 2-7 are checked field by field below


def scapy_bit_offsets(layer: type[layers.ISCSI]) -> dict[str, tuple[int, int]]:
    """(bit offset, bit width) of every BHS field of a scapy layer."""
    out: dict[str, tuple[int, int]] = {}
    bit = 0
    for field in layer.fields_desc:
        if bit >= bhs.BHS_LENGTH * 8:
            break
        width = field.size if hasattr(field, "size") and type(field).__name__.startswith(
            ("Bit", "XBit")) else None
        if width is None:
            width = field.sz * 8 if hasattr(field, "sz") and field.sz else len(field.default) * 8
        out[field.name] = (bit, width)
        bit += width
    assert bit == bhs.BHS_LENGTH * 8, f"{layer.__name__}: BHS fields cover {bit // 8} bytes"
    return out


def table_bit_offsets(table: bhs.Bhs) -> dict[str, tuple[int, int]]:
    out = {f.name: (8 + 7 - (f.shift + f.width - 1), f.width) for f in table.flags}
    for name, offset in table.offsets().items():
        size = next((f.size for f in (*table.bytes2_3, *table.rest)
                     if isinstance(f, bhs.Field) and f.name == name), None)
        if size is None:  # reserved: its size is up to the next offset
            continue
        out[name] = (offset * 8, size * 8)
    return out


@pytest.mark.parametrize("table", bhs.TABLES, ids=lambda t: t.title)
def test_the_codec_class_is_its_table(table: bhs.Bhs) -> None:
    cls = codec.PDU_CLASSES[table.opcode]
    assert cls.layout is table and cls.opcode == table.opcode
    assert (cls.__name__, cls.__doc__) == (table.name, table.doc)
    assert set(cls.fields) == {"ahs", "data", "immediate", *(f.name for f in table.fields),
                               *(name for name, _ in table.extras)}
    pdu = cls()
    for f in table.fields:
        assert getattr(pdu, f.name) == f.default, f.name
    assert pdu.immediate is table.immediate


@pytest.mark.parametrize("table", bhs.TABLES, ids=lambda t: t.title)
def test_the_scapy_layer_has_every_table_field_at_its_offset(table: bhs.Bhs) -> None:
    layer = layers.PDU_LAYERS[table.opcode]
    scapy = scapy_bit_offsets(layer)
    for name, place in table_bit_offsets(table).items():
        assert scapy.get(name) == place, f"{layer.__name__}.{name}"
    for f in table.flags:
        if isinstance(f, bhs.Fixed):
            assert layer().getfieldval(f.name) == 1
    assert layer().immediate == int(table.immediate)


def test_a_scapy_layer_that_drifts_from_its_table_is_caught() -> None:
    drifted: Any = type("Drifted", (layers.ISCSI,), {
        "fields_desc": [*layers.ISCSIR2T.fields_desc[:8], *reversed(
            layers.ISCSIR2T.fields_desc[8:10]), *layers.ISCSIR2T.fields_desc[10:]]})
    scapy = scapy_bit_offsets(drifted)
    assert any(scapy.get(name) != place
               for name, place in table_bit_offsets(bhs.R2T).items())


def test_a_table_that_does_not_fill_its_bytes_or_overlaps_is_refused() -> None:
    with pytest.raises(ValueError, match="do not add up"):
        bhs.Bhs("Short", "short", "", bhs.Opcode.NOP_OUT, (), (bhs.Reserved(2),),
                (bhs.Reserved(39),))
    with pytest.raises(ValueError, match="overlaps"):
        bhs.Bhs("Overlap", "overlap", "", bhs.Opcode.NOP_OUT,
                (bhs.Flag("a", 7), bhs.Bits("b", 6, 2)), (bhs.Reserved(2),), (bhs.Reserved(40),))


def test_a_class_whose_slots_are_not_its_tables_is_refused() -> None:
    with pytest.raises(TypeError, match="__slots__"):
        type("Broken", (Pdu,), {"layout": bhs.R2T, "__slots__": ("lun",)})
