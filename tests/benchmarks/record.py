"""Recording benchmark results: one JSON per benchmark and a Markdown table that grows a row per run.

A figure may be a `Spread` or `Ratio` (tests/benchmarks/abba.py): the JSON keeps its median, range and
rounds, the table shows them as text.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from tests.benchmarks.abba import Spread

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
    """Write results/<name>.json and append a row to results/<name>.md; print and return the row.

    The row says how busy the machine was (load average over the last minute, against its core count):
    on a shared machine other processes run during the benchmark, and only the ranges tell by how much
    that moved the figures.
    """
    RESULTS.mkdir(exist_ok=True)
    row = {"date": datetime.date.today().isoformat(), "machine": machine(),
           "load_average": round(os.getloadavg()[0], 1), **figures}
    as_json = {key: value.as_dict() | {"text": value.format()} if isinstance(value, Spread) else value
               for key, value in row.items()}
    (RESULTS / f"{name}.json").write_text(json.dumps(as_json, indent=2) + "\n")
    table = RESULTS / f"{name}.md"
    header = "| " + " | ".join(row) + " |"
    headers = [line for line in table.read_text().splitlines() if line.startswith("| date |")] if table.exists() else []
    with table.open("a") as handle:
        if not headers or headers[-1] != header:  # a changed benchmark starts a new table below the old rows
            handle.write(("\n" if headers else "") + header + "\n|" + "---|" * len(row) + "\n")
        handle.write("| " + " | ".join(value.format() if isinstance(value, Spread) else str(value)
                                       for value in row.values()) + " |\n")
    print(json.dumps(as_json, indent=2))
    return row
