"""The peers ``fastgru bench`` knows, by library name. Adding a peer: a ``peer_<library>.py``
module with ``candidates(workload)`` and ``PEER``, listed here."""
from __future__ import annotations

from typing import Dict, List

from . import peer_fastgru, peer_onnxruntime, peer_tensorflow, peer_torch
from .harness import Peer

FASTGRU: Peer = peer_fastgru.PEER  # the baseline every other row is compared with
BUILT_IN: Dict[str, Peer] = {p.library: p for p in (
    peer_torch.PEER, peer_onnxruntime.PEER, peer_tensorflow.PEER)}
PEERS: List[Peer] = list(BUILT_IN.values())  # what a run tries by default


def is_built_in(peer: Peer) -> bool:
    """Whether a child process can rebuild ``peer`` from its library name."""
    return BUILT_IN.get(peer.library) is peer or peer is FASTGRU
