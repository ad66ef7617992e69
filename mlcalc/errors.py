"""Exceptions raised by mlcalc. Each message names the problem and the fix."""

from __future__ import annotations


class MLCalcError(Exception):
    """Base class of every mlcalc error."""


class ContractError(MLCalcError, ValueError):
    """A model or a saved file does not follow the mlcalc potential contract."""


class UnitError(MLCalcError, ValueError):
    """A length or energy unit is unknown or missing."""


class UnsupportedElementError(MLCalcError, ValueError):
    """A structure contains an element the potential was not trained for."""


class InvalidStructureError(MLCalcError, ValueError):
    """A structure cannot be evaluated: NaN coordinates, a degenerate cell, bad shapes."""


class DeviceError(MLCalcError, RuntimeError):
    """A device (``cuda``) or platform that this machine does not have was asked for."""


class CompileError(MLCalcError, RuntimeError):
    """The compiled route (``mlcalc.load(path, compile=True)``) cannot serve this file here; the same file
    still runs through TorchScript without ``compile``."""


class UncertaintyExceededError(MLCalcError, RuntimeError):
    """A committee's energy spread passed the threshold a run was given: the simulation left the region the
    potential was trained for."""


class ExtensionError(MLCalcError, RuntimeError):
    """A TorchScript file calls operators or classes of an extension library (a C++ library that registers
    them with torch) that this process has not loaded."""


class PluginError(MLCalcError, ValueError):
    """A model-family adapter is missing, or cannot convert what it was given (a model of another
    family, unsupported elements or options)."""


class FamilyVersionError(PluginError):
    """The installed family package (torchani, mace-torch, ...) is a version the adapter was not tested with."""


def script_error_message(exc: BaseException) -> str:
    """The message a TorchScript ``raise`` carried, without the interpreter's traceback."""
    text = str(exc)
    marker = "builtins."
    if marker in text:
        tail = text[text.rindex(marker) + len(marker) :]
        return tail.split(": ", 1)[1].strip() if ": " in tail else tail.strip()
    return text
