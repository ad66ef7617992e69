"""Secondary-structure states from φ/ψ by the rectangular Ramachandran regions of Hedelius's TrIP thesis
(BYU, 2024), Table 4.

Each region is ``(φ_low, φ_high, ψ_low, ψ_high)`` in degrees; a range whose lower bound exceeds its
upper bound wraps through ±180° (β: φ from 130° through 180° to −90°); lower bounds are inside, upper
bounds outside. Read that way the five regions cover the whole Ramachandran plane, and overlap in one
place: as printed, P_II's ψ range (50° through 180° to −40°) and α_R's (−110° to 50°) share
φ ∈ [−90°, 20°), ψ ∈ [−110°, −40°), the right-handed helix itself (φ, ψ = −60°, −45°). There α_R
wins: states are assigned in the order of :data:`REGIONS`, first match, so every frame gets one state.
"""

from __future__ import annotations

import numpy as np

#: Seed 004, Table 4: state -> (φ lower, φ upper, ψ lower, ψ upper), degrees.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "alphaR": (130.0, 20.0, -110.0, 50.0),
    "beta": (130.0, -90.0, 50.0, -110.0),
    "PII": (-90.0, 20.0, 50.0, -40.0),
    "alphaL": (20.0, 130.0, -90.0, 120.0),
    "P": (20.0, 130.0, 120.0, -90.0),
}


def _inside(angle: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low <= angle < high`` on the circle (wrapping through ±180° when ``low > high``)."""
    span = (high - low) % 360.0
    return (angle - low) % 360.0 < span


def assign_states(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """The state name of each (φ, ψ) pair (degrees), as an array of strings of ``phi``'s shape."""
    phi, psi = np.broadcast_arrays(np.asarray(phi, float), np.asarray(psi, float))
    states = np.full(phi.shape, "", dtype=object)
    for name, (phi_low, phi_high, psi_low, psi_high) in REGIONS.items():
        mask = _inside(phi, phi_low, phi_high) & _inside(psi, psi_low, psi_high) & (states == "")
        states[mask] = name
    if (states == "").any():  # cannot happen for finite angles: the regions tile the plane
        raise ValueError("some φ/ψ values are not finite angles")
    return states


def circular_mean_std(degrees: np.ndarray) -> tuple[float, float]:
    """Circular mean and standard deviation, sqrt(-2 ln R), in degrees."""
    radians = np.radians(np.asarray(degrees, float))
    vector = np.exp(1j * radians).mean()
    length = min(abs(vector), 1.0)
    return float(np.degrees(np.angle(vector))), float(
        np.degrees(np.sqrt(-2.0 * np.log(length)))
    ) if length > 0 else float("inf")


def state_statistics(phi: np.ndarray, psi: np.ndarray) -> list[dict]:
    """Seed 004 Table 9 per state: mean and standard deviation of φ and ψ (circular), population (%)."""
    phi, psi = np.ravel(phi), np.ravel(psi)
    states = assign_states(phi, psi)
    rows = []
    for name in REGIONS:
        mask = states == name
        row = {"state": name, "count": int(mask.sum()), "population_percent": 100.0 * mask.mean() if mask.size else 0.0}
        if mask.any():
            row["phi_mean"], row["phi_std"] = circular_mean_std(phi[mask])
            row["psi_mean"], row["psi_std"] = circular_mean_std(psi[mask])
        else:
            row.update(phi_mean=float("nan"), phi_std=float("nan"), psi_mean=float("nan"), psi_std=float("nan"))
        rows.append(row)
    return rows
