"""`study.tex` and `compare --latex`: a booktabs table with every config's row, its interval, its difference from
the baseline with the Holm-adjusted p and a marker where significant, names escaped. Compiled with pdflatex where
it is installed (Debian: texlive-latex-base, texlive-latex-recommended); parsed as a tabular otherwise."""

from __future__ import annotations

import re
import shutil
import subprocess


from hf_tasks.study import compare as compare_cli
from hf_tasks.study.latex import MARKED, escape
from hf_tasks.study.table import write_table
from tests.test_study_stats import finish, right_and_wrong, study_runs, write_run

DOCUMENT = "\\documentclass{{article}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\n{}\\end{{document}}\n"


def tabular_rows(tex: str) -> list[list[str]]:
    """The cells of every row between \\midrule and \\bottomrule."""
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    rows = [line.removesuffix("\\\\").strip() for line in body.strip().splitlines()]
    return [[cell.strip() for cell in re.split(r"(?<!\\)&", row)] for row in rows]


def compiles(tex: str, folder) -> None:
    """pdflatex accepts the table in a minimal document (skipped without pdflatex)."""
    if shutil.which("pdflatex") is None:
        return
    (folder / "paper.tex").write_text(DOCUMENT.format(tex), encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=folder,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (folder / "paper.pdf").stat().st_size > 0


def test_escape_makes_every_special_character_literal():
    assert escape("a_b & c%d#e$f{g}h~i^j\\k") == (r"a\_b \& c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j"
                                                   r"\textbackslash{}k")


def test_study_tex_holds_every_config_with_its_interval_difference_and_marker(tmp_path):
    gold, baseline, better = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    _, _, same = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(100, 105)])
    runs = study_runs(tmp_path, [("full_ft", None), ("lora_r8&more", None), ("same%", None)])
    for run, predicted in zip(runs, (baseline, better, same)):
        write_run(run.run_dir, gold, predicted)
        finish(run)
    write_table(runs, tmp_path / "study", "cmd", [])
    tex = (tmp_path / "study" / "study.tex").read_text(encoding="utf-8")
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\begin{tabular}{lrrr}" in tex
    rows = {row[0]: row for row in tabular_rows(tex)}
    assert list(rows) == [r"full\_ft", r"lora\_r8\&more", r"same\%"]
    assert all(len(row) == 4 for row in rows.values())
    assert rows[r"full\_ft"][1].startswith("$0.5250$ [") and rows[r"full\_ft"][2] == "(baseline)"
    assert rows[r"lora\_r8\&more"][2].startswith("$+0.1500" + MARKED + "$")  # 35 against 5 discordant: significant
    assert rows[r"same\%"][2].startswith("$+0.0000$ [") and MARKED not in rows[r"same\%"][2]
    assert rows[r"same\%"][3] == "$1$"
    compiles(tex, tmp_path)


def test_compare_prints_a_latex_table_with_both_runs(tmp_path, capsys):
    gold, baseline, config = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    write_run(tmp_path / "base_run", gold, baseline)
    write_run(tmp_path / "new_run", gold, config)
    assert compare_cli.main([str(tmp_path / "base_run"), str(tmp_path / "new_run"), "--latex"]) == 0
    tex = capsys.readouterr().out
    rows = tabular_rows(tex)
    assert [row[0] for row in rows] == [r"base\_run", r"new\_run"]
    assert rows[1][2].startswith("$+0.1500" + MARKED + "$")
    assert "test\\_accuracy" in tex
    compiles(tex, tmp_path)
