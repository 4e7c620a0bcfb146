"""Modbus register decoding for every data type, word order and byte order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch.domain.registers import DataType, Order, decode_registers, encode_registers

KNOWN = [
    # (registers as the device returns them, type, word order, byte order, value)
    ([0x42F6, 0xE979], DataType.FLOAT32, Order.BIG, Order.BIG, 123.456),
    ([0xE979, 0x42F6], DataType.FLOAT32, Order.LITTLE, Order.BIG, 123.456),
    ([0xF642, 0x79E9], DataType.FLOAT32, Order.BIG, Order.LITTLE, 123.456),
    ([0x79E9, 0xF642], DataType.FLOAT32, Order.LITTLE, Order.LITTLE, 123.456),
    ([0xFB2E], DataType.INT16, Order.BIG, Order.BIG, -1234),
    ([0x2EFB], DataType.INT16, Order.BIG, Order.LITTLE, -1234),
    ([0xFFFF], DataType.UINT16, Order.BIG, Order.BIG, 65535),
    ([0x0001, 0x0000], DataType.UINT32, Order.BIG, Order.BIG, 65536),
    ([0x0000, 0x0001], DataType.UINT32, Order.LITTLE, Order.BIG, 65536),
    ([0xFFFF, 0xFFFE], DataType.INT32, Order.BIG, Order.BIG, -2),
]


@pytest.mark.parametrize(("registers", "data_type", "words", "bytes_", "value"), KNOWN)
def test_known_vectors(registers: list[int], data_type: DataType, words: Order, bytes_: Order, value: float) -> None:
    assert decode_registers(registers, data_type, word_order=words, byte_order=bytes_) == pytest.approx(value, rel=1e-6)
    assert encode_registers(value, data_type, word_order=words, byte_order=bytes_) == registers


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(list(Order)), st.sampled_from(list(Order)))
def test_int32_round_trips(value: int, words: Order, bytes_: Order) -> None:
    regs = encode_registers(value, DataType.INT32, word_order=words, byte_order=bytes_)
    assert decode_registers(regs, DataType.INT32, word_order=words, byte_order=bytes_) == value


def test_wrong_register_count_and_values_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_registers([1], DataType.FLOAT32)
    with pytest.raises(ValueError, match="16-bit"):
        decode_registers([70000], DataType.UINT16)
