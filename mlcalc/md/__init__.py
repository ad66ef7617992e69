"""Molecular dynamics in OpenMM with mlcalc potentials: prepare, equilibrate, produce, resume.

:func:`mlcalc.md.pipeline.run` drives minimisation → NVT → NPT → production with checkpoints;
:mod:`mlcalc.md.config` holds the run's parameters, :mod:`mlcalc.md.prepare` builds the solvated
structure and :mod:`mlcalc.md.systems` the whole-system ML or ML/MM ``openmm.System``.
"""
