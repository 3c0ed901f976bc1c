"""The worker's changelogged tables, declared once.

State that must survive a restart lives here (DESIGN.md): each table is backed by a compacted changelog
topic (:func:`streams.topics.changelog`) that a restarted worker reads back before it consumes. Waveform
buffers are not here: they are rebuilt from the input topic's uncommitted tail (:mod:`streams.windows`).

* ``vitals-state``: patient id -> ``{vital name: [[time_s, value], ...]}`` (:func:`streams.align.add_vitals`),
  written when :func:`streams.align.changelog_due` says so (every sporadic reading, continuous numerics once
  per ``resolution_s``) and once a patient's vitals pause; the worker's memory holds the points in between.
* ``context-state``: patient id -> ``{"imaging": [...], "notes": [...]}`` (:func:`streams.align.add_context`).
* ``beat-references``: patient id -> the patient's reference beat per ECG lead and when it was learned
  (:class:`streams.scoring.BeatReferences`), written each time one is learned (about every 30 s of event time),
  so beat classing against it goes on across a restart, even in a ventricular rhythm that teaches none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams import topics


@dataclass(frozen=True)
class Tables:
    """The tables of one app."""

    vitals: Any
    context: Any
    beats: Any


def declare_tables(app: faust.App) -> Tables:
    """Declare the tables on ``app``: patient-id keys, JSON values (Faust's default serialiser) read back as dicts."""
    return Tables(
        vitals=app.Table(topics.VITALS_TABLE, default=dict, key_type=str),
        context=app.Table(topics.CONTEXT_TABLE, default=dict, key_type=str),
        beats=app.Table(topics.BEATS_TABLE, default=dict, key_type=str),
    )
