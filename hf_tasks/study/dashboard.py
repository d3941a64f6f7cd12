"""The study in trackio's dashboard: with `--report_to trackio` every run of a study (each config × seed, each
search trial) reports to one trackio project named after the study, grouped by config (`runs.study_tracking`),
and the study's own tables and pictures go to one more run of that project, `<study>-summary`: the comparison
table (`study_comparisons.csv`) and `study.csv` as trackio tables, `study.png` and `study_differences.png` as
images, and for a search `search.csv`, `search_expected_max.csv` and their plots. `trackio show` in the study's
`trackio` folder (or TRACKIO_DIR) is then the study's dashboard.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

TABLES = ("study_comparisons", "study", "search", "search_expected_max")
FIGURES = ("study", "study_differences", "search", "search_expected_max")


def summary_run(output_dir: Path) -> str:
    """The name of the run holding a study's (or one config's search's) tables."""
    return f"{Path(output_dir).resolve().name}-summary"


def log_study(output_dir: Path) -> bool:
    """Log the study's tables and pictures as they stand to its trackio project; False (nothing done) when no
    run of the study reported to trackio."""
    output_dir = Path(output_dir).resolve()
    folder = Path(os.environ.get("TRACKIO_DIR") or output_dir / "trackio")
    if not folder.is_dir() or importlib.util.find_spec("trackio") is None:
        return False
    # hf_tasks.trackers loads transformers' tracker integrations (seconds, and a line on stdout under
    # WANDB_MODE=offline): only a study that tracks pays for them, not its --help or a plain table.
    from hf_tasks.trackers import TRACKIO_PROJECT_VARIABLE, TrackioTarget, trackio_folder

    trackio_folder(output_dir / "trackio")
    import trackio
    from trackio.sqlite_storage import SQLiteStorage

    project = os.environ.get(TRACKIO_PROJECT_VARIABLE) or output_dir.name
    if not SQLiteStorage.get_project_db_path(project).is_file():
        return False  # a TRACKIO_DIR of the user's, but no run of this study reported there
    logged = {}
    for name in TABLES:
        path = output_dir / f"{name}.csv"
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.reader(handle))
            if rows:
                logged[f"tables/{name}"] = trackio.Table(columns=rows[0], data=rows[1:])
    logged.update({f"figures/{name}": trackio.Image(str(output_dir / f"{name}.png")) for name in FIGURES
                   if (output_dir / f"{name}.png").is_file()})
    if not logged:
        return False
    summary = summary_run(output_dir)
    TrackioTarget(project, summary, summary).open({"study": str(output_dir)})
    trackio.log(logged)
    trackio.finish()
    return True
