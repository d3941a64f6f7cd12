"""Sphinx configuration: MyST Markdown pages, autodoc for the reference, the furo theme (its fonts and
scripts ship inside the package, so the site works offline), and the project's own directives
(`_ext/generated.py`) for everything generated from the code."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # hf_tasks and tests, from this checkout
sys.path.insert(0, str(DOCS / "_ext"))

project = "hf_tasks"
author = "hf_tasks contributors"
copyright = "the hf_tasks contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "generated"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Help texts name flags (--do_train) and values ('lora'): no typographic dashes or quotes.
smartquotes = False
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = "hf_tasks"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_show_sourcelink = False

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures name the types; dataclass defaults would fill pages otherwise
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
# Heavy optional packages the reference does not need to import to read docstrings.
autodoc_mock_imports = ["submitit", "psycopg", "onnxruntime", "onnx", "wandb", "mlflow"]
