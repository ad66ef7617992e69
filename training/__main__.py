"""``python -m training STAGE``: geometries | sample | label | explore | train | export | validate | probe |
calibrate | query | committee."""

from __future__ import annotations

import importlib
import sys

STAGES = (
    "geometries",
    "sample",
    "label",
    "explore",
    "train",
    "export",
    "validate",
    "probe",
    "calibrate",
    "query",
    "committee",
)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        raise SystemExit(f"usage: python -m training {{{'|'.join(STAGES)}}} [options]")
    stage = sys.argv.pop(1)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # train --threads raises it
    with threadpool_limits(1):  # one BLAS thread: the machine is shared and BLAS workers busy-wait
        importlib.import_module(f"training.{stage}").main()


if __name__ == "__main__":
    main()
