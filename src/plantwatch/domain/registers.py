"""Modbus register decoding: 16-bit registers to a number, for every data type, word order and byte order."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Final


class DataType(StrEnum):
    """How a value is laid out in registers."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"


class Order(StrEnum):
    """Order of words in a multi-register value, or of bytes in a register."""

    BIG = "big"
    LITTLE = "little"


#: Registers each data type occupies.
REGISTER_COUNT: Final[dict[DataType, int]] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
}
_FORMAT: Final[dict[DataType, str]] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.FLOAT32: ">f",
}


def _raw_bytes(registers: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    words = list(registers) if word_order == Order.BIG else list(reversed(registers))
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register value {word} is not a 16-bit unsigned integer")
        pair = word.to_bytes(2, "big")
        out += pair if byte_order == Order.BIG else pair[::-1]
    return bytes(out)


def decode_registers(
    registers: Sequence[int], data_type: DataType, *, word_order: Order = Order.BIG, byte_order: Order = Order.BIG
) -> float:
    """The number held in ``registers`` (as a device returns them, lowest address first)."""
    if len(registers) != REGISTER_COUNT[data_type]:
        raise ValueError(f"{data_type} needs {REGISTER_COUNT[data_type]} registers, got {len(registers)}")
    value = struct.unpack(_FORMAT[data_type], _raw_bytes(registers, word_order, byte_order))[0]
    return float(value)


def encode_registers(
    value: float, data_type: DataType, *, word_order: Order = Order.BIG, byte_order: Order = Order.BIG
) -> list[int]:
    """The registers a device would hold for ``value`` (the inverse of :func:`decode_registers`)."""
    fmt = _FORMAT[data_type]
    raw = struct.pack(fmt, value if data_type == DataType.FLOAT32 else int(value))
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    regs = [int.from_bytes(w if byte_order == Order.BIG else w[::-1], "big") for w in words]
    return regs if word_order == Order.BIG else list(reversed(regs))
