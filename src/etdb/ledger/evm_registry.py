"""The etdb registry contract: 54 bytes of hand-assembled EVM code, no compiler needed.

Calling the registry with a payload as calldata emits one event log whose data is exactly the
payload bytes and whose topics are ``[RECORD_TOPIC, caller]``. Nothing is stored, so a record
costs about what its calldata costs; the node's log index lets a reader fetch every record (or
one publisher's, by ``topic1``) with ``eth_getLogs`` instead of scanning every block.

``RECORD_TOPIC`` is ``keccak256("etdb.record.v1")``. It is deliberately not a Solidity event
signature: the log data is raw UTF-8, not ABI-encoded, and an ABI decoder must not mistake it
for one. A future layout would get a new topic (``etdb.record.v2``).

Runtime (54 bytes)::

    00 CALLVALUE                 value sent? then revert: the contract can never hold funds
    01 ISZERO
    02 PUSH1 0x09
    04 JUMPI                     value == 0 -> go on at 0x09
    05 PUSH1 0x00
    07 DUP1
    08 REVERT                    revert(0, 0)
    09 JUMPDEST
    0a CALLDATASIZE
    0b PUSH1 0x00
    0d DUP1
    0e CALLDATACOPY              memory[0:size] = calldata
    0f CALLER                    topic1: the sender, left-padded to 32 bytes
    10 PUSH32 RECORD_TOPIC       topic0
    31 CALLDATASIZE
    32 PUSH1 0x00
    34 LOG2                      log(memory[0:size], topic0, topic1)
    35 STOP

Init code (11 bytes, then the runtime): ``CODECOPY`` the runtime to memory and ``RETURN`` it.
No ``PUSH0`` is used, so the code runs on pre-Shanghai chains too.

Gas, measured on Ganache 7.9.2 (Shanghai) and Hardhat 2.29.1 (Prague) and reproduced by
:func:`publish_gas`: deployment 64,804; a call with an n-byte payload (no zero bytes, as UTF-8
text never has) 22,165 + 24·n + memory (46,359 for 1,000 bytes) before Prague; on Prague and
later EIP-7623's calldata floor dominates: 21,000 + 40·n (61,000 for 1,000 bytes).
"""

from __future__ import annotations

RECORD_TOPIC = bytes.fromhex("b72250b8809a4c6b1c44cb9370643b67d4955b5e339d5be938c127c213a18379")
RECORD_TOPIC_NAME = b"etdb.record.v1"

_OPCODES = {
    "STOP": 0x00,
    "ISZERO": 0x15,
    "CALLER": 0x33,
    "CALLVALUE": 0x34,
    "CALLDATASIZE": 0x36,
    "CALLDATACOPY": 0x37,
    "CODECOPY": 0x39,
    "JUMPI": 0x57,
    "JUMPDEST": 0x5B,
    "PUSH1": 0x60,
    "PUSH32": 0x7F,
    "DUP1": 0x80,
    "LOG2": 0xA2,
    "RETURN": 0xF3,
    "REVERT": 0xFD,
}

Listing = tuple[tuple[str, bytes], ...]

RUNTIME_LISTING: Listing = (
    ("CALLVALUE", b""),
    ("ISZERO", b""),
    ("PUSH1", b"\x09"),
    ("JUMPI", b""),
    ("PUSH1", b"\x00"),
    ("DUP1", b""),
    ("REVERT", b""),
    ("JUMPDEST", b""),
    ("CALLDATASIZE", b""),
    ("PUSH1", b"\x00"),
    ("DUP1", b""),
    ("CALLDATACOPY", b""),
    ("CALLER", b""),
    ("PUSH32", RECORD_TOPIC),
    ("CALLDATASIZE", b""),
    ("PUSH1", b"\x00"),
    ("LOG2", b""),
    ("STOP", b""),
)


def assemble(listing: Listing) -> bytes:
    """Bytes of a listing; PUSHn operands must be exactly n bytes."""
    out = bytearray()
    for name, operand in listing:
        op = _OPCODES[name]
        width = op - 0x5F if 0x60 <= op <= 0x7F else 0
        if len(operand) != width:
            raise ValueError(f"{name} takes {width} operand bytes, got {len(operand)}")
        out.append(op)
        out += operand
    return bytes(out)


RUNTIME = assemble(RUNTIME_LISTING)


def _init_listing(runtime_size: int) -> Listing:
    size = runtime_size.to_bytes(1, "big")
    return (
        ("PUSH1", size),
        ("DUP1", b""),
        ("PUSH1", b"\x0b"),  # where the runtime starts: right after these 11 bytes
        ("PUSH1", b"\x00"),
        ("CODECOPY", b""),  # memory[0:size] = code[11:11+size]
        ("PUSH1", b"\x00"),
        ("RETURN", b""),  # return memory[0:size]: the runtime
    )


INIT_CODE = assemble(_init_listing(len(RUNTIME))) + RUNTIME

#: Gas the deployment transaction used (Shanghai and Prague alike).
DEPLOY_GAS = 64_804

# Gas schedule pieces (yellow paper / EIPs) used by publish_gas.
TX_BASE = 21_000
CALLDATA_NONZERO = 16  # EIP-2028; UTF-8 text has no zero bytes
FLOOR_PER_BYTE = 40  # EIP-7623 (Prague): 10 gas per token, 4 tokens per nonzero byte
# Fixed execution cost of the runtime without the LOG2 and copy terms: CALLVALUE 2, ISZERO 3,
# PUSH1 3, JUMPI 10, JUMPDEST 1, CALLDATASIZE 2, PUSH1 3, DUP1 3, CALLDATACOPY 3, CALLER 2,
# PUSH32 3, CALLDATASIZE 2, PUSH1 3; LOG2 375 + 2 topics x 375.
_FIXED_EXECUTION = 2 + 3 + 3 + 10 + 1 + 2 + 3 + 3 + 3 + 2 + 3 + 2 + 3 + 375 + 2 * 375


def _words(n: int) -> int:
    return (n + 31) // 32


def registry_execution_gas(n: int) -> int:
    """Execution gas of one registry call with ``n`` calldata bytes."""
    words = _words(n)
    copy = 3 * words
    memory = 3 * words + words * words // 512
    return _FIXED_EXECUTION + copy + memory + 8 * n


def publish_gas(n: int, *, log: bool = True, prague: bool = True) -> int:
    """Gas of one transaction carrying ``n`` payload bytes (no zero bytes).

    ``log``: to the registry (else a plain transfer to an address without code). ``prague``:
    apply EIP-7623's calldata floor (chains from Prague on), which then usually dominates.
    """
    standard = TX_BASE + CALLDATA_NONZERO * n + (registry_execution_gas(n) if log else 0)
    return max(standard, TX_BASE + FLOOR_PER_BYTE * n) if prague else standard
