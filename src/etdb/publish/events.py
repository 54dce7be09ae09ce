"""What a publishing run reports while it works (``Publisher(on_event=...)``).

Progress bars, logs and the CLI's live table consume these; they carry no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BlocksPushed",
    "BytesAdded",
    "DatasetFailed",
    "DatasetFinished",
    "DatasetStarted",
    "Event",
    "PushStarted",
    "Pushed",
    "Recovered",
    "WaitingForConfirmations",
]


@dataclass(frozen=True, slots=True)
class DatasetStarted:
    sid: str
    action: str  # an Action value
    bytes: int  # what will be added (0 when the content is unchanged)


@dataclass(frozen=True, slots=True)
class BytesAdded:
    sid: str
    n: int  # bytes read since the last BytesAdded of this dataset


@dataclass(frozen=True, slots=True)
class DatasetFinished:
    sid: str
    action: str  # what was done in the end (an Action value)
    txids: tuple[str, ...]  # every transaction sent for it (none when nothing was needed)
    seconds: float


@dataclass(frozen=True, slots=True)
class DatasetFailed:
    sid: str
    reason: str


@dataclass(frozen=True, slots=True)
class PushStarted:
    """The dataset's DAG starts streaming to the kubo node (``api``: printable)."""

    sid: str
    cid: str
    api: str


@dataclass(frozen=True, slots=True)
class BlocksPushed:
    sid: str
    n: int  # bytes of one block just sent to kubo


@dataclass(frozen=True, slots=True)
class Pushed:
    """kubo has the dataset's DAG pinned (``node``: its peer ID); journaled."""

    sid: str
    cid: str
    node: str
    blocks: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Recovered:
    """A journal operation a previous run left unfinished, now completed."""

    sid: str
    kind: str  # publish | edit | deactivate
    txids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaitingForConfirmations:
    """The node takes no more unconfirmed transactions in a row (its chain limit): the run
    waits for a block to confirm some, at most ``timeout`` seconds, then sends ``sid``'s."""

    sid: str
    unconfirmed: int | None  # transactions waiting in the chain, where the node says
    timeout: float

    @property
    def text(self) -> str:
        count = f"{self.unconfirmed} " if self.unconfirmed else ""
        return f"waiting for {count}unconfirmed transactions to confirm (chain limit)…"


Event = (
    DatasetStarted
    | BytesAdded
    | DatasetFinished
    | DatasetFailed
    | PushStarted
    | BlocksPushed
    | Pushed
    | Recovered
    | WaitingForConfirmations
)
