"""Metadata read from a dataset's MRC files and their sidecars, reconciled with the lab's.

A lab's database often lacks, or has wrong, the acquisition parameters a record carries (tilt
range and step, magnification, dose, defocus). The files know them: MRC extended headers
(FEI1/FEI2 from Thermo Fisher software, SERI from SerialEM), SerialEM ``.mdoc`` files and
IMOD ``.rawtlt``/``.tlt`` angle lists. The publishing pipeline uses this package as::

    facts = dataset_facts(folder, tilt_series=[...], reconstructions=[...])
    metadata, disagreements = reconcile(metadata, facts)

One file's facts (headers, extended headers, sidecars) are read by :mod:`etdb.mrc.facts`;
here: :mod:`.dataset` (a dataset's facts and the record values they imply) and
:mod:`.reconcile`.
"""

from etdb.mrc.errors import MrcError
from etdb.mrc.facts import FileFacts, Source, read_mrc_facts
from etdb.publish.mrcmeta.dataset import DatasetFacts, dataset_facts, tilt_summary
from etdb.publish.mrcmeta.reconcile import Disagreement, reconcile

__all__ = [
    "DatasetFacts",
    "Disagreement",
    "FileFacts",
    "MrcError",
    "Source",
    "dataset_facts",
    "read_mrc_facts",
    "reconcile",
    "tilt_summary",
]
