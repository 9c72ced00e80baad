"""The ending the real-model benchmarks share: the run's seconds, the report printed as JSON and,
with ``--out``, written to a file."""

from __future__ import annotations

import json
import time
from pathlib import Path


def finish(report: dict, start: float, out: Path | None) -> None:
    report["seconds"] = round(time.time() - start, 1)
    text = json.dumps(report, indent=1)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
