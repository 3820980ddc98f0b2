"""Simulated crashes for the tests that check nothing is lost or left behind when an encode is interrupted."""

from __future__ import annotations


def interrupt_on_call(encoder, n: int):
    """Make ``encoder.encode`` raise KeyboardInterrupt (as Ctrl-C would) on its ``n``-th call; earlier calls work.
    Returns the real ``encode``, to put back."""
    real_encode = encoder.encode
    calls = {"n": 0}

    def encode(items, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_encode(items, **kw)

    encoder.encode = encode
    return real_encode
