"""Vibrational power spectrum as the Fourier transform of the velocity autocorrelation function.

By the Wiener-Khinchin theorem the transform of the VACF is |FFT(v)|², averaged over atoms and
components; ``numpy.fft`` does it in O(T log T), zero-padded to avoid circular correlation.
Trajectories written by OpenMM's DCD/XTC reporters hold no velocities: they are obtained by
central differences of the positions (minimum image across frames), which is exact for the
frequencies well below the Nyquist limit 1/(2 Δt) of the frame interval Δt.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from MDAnalysis.lib.distances import minimize_vectors

#: Speed of light in cm/ps: converts a frequency in 1/ps (THz) to a wavenumber in cm⁻¹.
SPEED_OF_LIGHT_CM_PER_PS = 2.99792458e-2


def velocities_from_positions(positions: np.ndarray, dt: float, boxes: Optional[np.ndarray] = None) -> np.ndarray:
    """Central-difference velocities [T-2, N, 3] (Å/ps) of positions [T, N, 3] in Å written every ``dt`` ps.

    ``boxes`` [T, 6] (MDAnalysis dimensions) applies the minimum image to frame-to-frame displacements,
    so atoms wrapped back into the box do not jump.
    """
    positions = np.asarray(positions, float)
    if positions.ndim != 3 or positions.shape[0] < 3:
        raise ValueError(f"need positions [frames >= 3, atoms, 3], got shape {positions.shape}")
    steps = np.diff(positions, axis=0)
    if boxes is not None:
        steps = np.stack([minimize_vectors(s, np.asarray(b, np.float64)) for s, b in zip(steps, boxes[1:])])
    return (steps[1:] + steps[:-1]) / (2.0 * dt)


def power_spectrum(
    velocities: np.ndarray, dt: float, masses: Optional[np.ndarray] = None
) -> tuple[np.ndarray, np.ndarray]:
    """(wavenumbers in cm⁻¹, power in arbitrary units, maximum 1) of velocities [T, N, 3] sampled every ``dt`` ps.

    ``masses`` [N] weights each atom's contribution (the mass-weighted VACF of the vibrational density of states).
    """
    velocities = np.asarray(velocities, float)
    if velocities.ndim != 3:
        raise ValueError(f"velocities must have shape [frames, atoms, 3], got {velocities.shape}")
    frames = velocities.shape[0]
    velocities = velocities - velocities.mean(axis=0)
    transform = np.fft.rfft(velocities, n=2 * frames, axis=0)
    power = np.abs(transform) ** 2
    if masses is not None:
        power = power * np.asarray(masses, float)[None, :, None]
    power = power.sum(axis=(1, 2))
    frequencies = np.fft.rfftfreq(2 * frames, d=dt)  # 1/ps
    return frequencies / SPEED_OF_LIGHT_CM_PER_PS, power / power.max()
