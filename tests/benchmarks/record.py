"""Recording benchmark results: one JSON per benchmark and a Markdown table that grows a row per run."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """CPU model and core count, or the GPU name when one is used."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores"


def record(name: str, figures: dict) -> dict:
    """Write results/<name>.json and append a row to results/<name>.md; print and return the row."""
    RESULTS.mkdir(exist_ok=True)
    row = {"date": datetime.date.today().isoformat(), "machine": machine(), **figures}
    (RESULTS / f"{name}.json").write_text(json.dumps(row, indent=2) + "\n")
    table = RESULTS / f"{name}.md"
    if not table.exists():
        table.write_text("| " + " | ".join(row) + " |\n|" + "---|" * len(row) + "\n")
    with table.open("a") as handle:
        handle.write("| " + " | ".join(str(value) for value in row.values()) + " |\n")
    print(json.dumps(row, indent=2))
    return row
