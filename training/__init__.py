"""Pipeline that trains mlcalc's bundled demo potential (HIP-NN on GFN2-xTB data).

Stages, each ``python -m training STAGE`` from the repository root with a fixed seed: ``geometries``
(optional, needs RDKit: rebuilds the shipped xyz files), ``sample``, ``label``, ``train``, ``export``,
``validate``. See training/README.md.
"""
