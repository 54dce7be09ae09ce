"""Metadata read from a dataset's MRC files and their sidecars, reconciled with the lab's.

A lab's database often lacks, or has wrong, the acquisition parameters a record carries (tilt
range and step, magnification, dose, defocus). The files know them: MRC extended headers
(FEI1/FEI2 from Thermo Fisher software, SERI from SerialEM), SerialEM ``.mdoc`` files and
IMOD ``.rawtlt``/``.tlt`` angle lists. The publishing pipeline uses this package as::

    facts = dataset_facts(folder, tilt_series=[...], reconstructions=[...])
    metadata, disagreements = reconcile(metadata, facts)

Modules: :mod:`.rawheader` (the 1024-byte header, checked), :mod:`.serialem` (SERI decoding),
:mod:`.sidecars` (mdoc/rawtlt/tlt parsing), :mod:`.header` (one file's facts),
:mod:`.dataset` (a dataset's facts and tilt summary), :mod:`.reconcile`.
"""

from etdb.publish.mrcmeta.dataset import DatasetFacts, dataset_facts, tilt_summary
from etdb.publish.mrcmeta.errors import MrcMetaError
from etdb.publish.mrcmeta.header import FileFacts, Source, read_mrc_facts
from etdb.publish.mrcmeta.reconcile import Disagreement, reconcile

__all__ = [
    "DatasetFacts",
    "Disagreement",
    "FileFacts",
    "MrcMetaError",
    "Source",
    "dataset_facts",
    "read_mrc_facts",
    "reconcile",
    "tilt_summary",
]
