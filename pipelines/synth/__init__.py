"""The synthetic municipality: exports in the form of ``docs/sources.md`` with ground truth.

See ``docs/synthetic-municipality.md`` for the generating model.
"""

from pipelines.synth.describe import describe_municipality
from pipelines.synth.generator import SynthParams, SynthSummary, generate_municipality

__all__ = ["SynthParams", "SynthSummary", "describe_municipality", "generate_municipality"]
