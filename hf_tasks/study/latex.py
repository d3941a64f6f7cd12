"""A study's table for a paper: `study.tex` beside `study.md`, and `python -m hf_tasks.study.compare A B --latex`.

One booktabs tabular (`\\usepackage{booktabs}` in the preamble): each config with its headline metric and its
bootstrap interval, its difference from the baseline with the paired-bootstrap interval and the Holm-adjusted
p-value, and a marker where that p is below `SIGNIFICANCE`. Config names are escaped (`_`, `&`, `%`, `#`, ...),
so the file compiles as it is; a name in a non-Latin script needs a Unicode engine (xelatex, lualatex).
"""

from __future__ import annotations

from dataclasses import dataclass

from hf_tasks.study.stats import CONFIDENCE, SIGNIFICANCE, Comparison

SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MARKED = r"^{\ast}"  # inside a number's math
MARKER = f"${MARKED}$"


def escape(text: str) -> str:
    """`text` as LaTeX prints it literally."""
    return "".join(SPECIAL.get(character, character) for character in str(text))


def _number(value: float, signed: bool = False, marked: bool = False) -> str:
    text = f"{value:+.4f}" if abs(value) < 10 else f"{value:+.2f}"
    return f"${text if signed else text.lstrip('+')}{MARKED if marked else ''}$"


def _interval(interval: tuple[float, float] | None, signed: bool = False) -> str:
    return "" if interval is None else f" [{_number(interval[0], signed)}, {_number(interval[1], signed)}]"


def _p(value: float | None) -> str:
    if value is None:
        return "---"
    return "$<0.001$" if value < 0.001 else f"${value:.3g}$"


@dataclass
class Entry:
    """One row: a config, its metric (mean over seeds) with its interval, and its comparison with the baseline
    (None for the baseline itself and for a config not compared)."""

    name: str
    value: float | None
    interval: tuple[float, float] | None = None
    comparison: Comparison | None = None


def latex_table(metric: str, baseline: str, entries: list[Entry], caption: str = "") -> str:
    """The table as a LaTeX `table` environment holding one booktabs `tabular`."""
    confidence = f"{CONFIDENCE:.0%}".replace("%", r"\%")
    lines = [
        "% Needs \\usepackage{booktabs}. Written by hf_tasks.study.",
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        f"Config & {escape(metric)} ({confidence} CI) & $\\Delta$ vs.\\ {escape(baseline)} ({confidence} CI) & "
        r"$p$ (Holm) \\",
        r"\midrule",
    ]
    for entry in entries:
        score = "---" if entry.value is None else _number(entry.value) + _interval(entry.interval)
        comparison = entry.comparison
        if entry.name == baseline:
            difference, p_value = "(baseline)", "---"
        elif comparison is None or comparison.reason is not None:
            difference, p_value = "---", "---"
        else:
            holm = comparison.holm_p if comparison.holm_p is not None else comparison.p_value
            difference = _number(comparison.difference, signed=True, marked=holm < SIGNIFICANCE) + _interval(
                comparison.interval, signed=True)
            p_value = _p(holm)
        lines.append(f"{escape(entry.name)} & {score} & {difference} & {p_value} \\\\")
    note = (f"{MARKER}: Holm-adjusted paired-bootstrap $p < {SIGNIFICANCE:g}$. Intervals: percentile bootstrap over "
            "the evaluated examples.")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + (escape(caption) + " " if caption else "") + note + "}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"
