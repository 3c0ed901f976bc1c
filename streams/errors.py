"""Exceptions of the ``streams`` package: one base, and the one every decoder raises."""

from __future__ import annotations


class StreamsError(Exception):
    """Base of every error the ``streams`` package raises on purpose."""


class InvalidEvent(StreamsError):
    """An input event that breaks its contract.

    ``code`` is a short machine-readable class of fault (``truncated``, ``unknown_version``,
    ``implausible_value``, ...); ``reason`` is the sentence a person reads in the dead-letter record.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class BrokerUnavailable(StreamsError):
    """Kafka did not answer within the bounded start-up retry."""
