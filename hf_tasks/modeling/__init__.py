"""Heads and wrappers that the transformers Auto classes lack.

Importing this package registers each model with `AutoConfig` and its `AutoModelFor*` class, so a
saved run folder loads with `AutoModelFor*.from_pretrained(folder)` after `import hf_tasks.modeling`.
"""

from importlib.util import find_spec

from hf_tasks.modeling import audio, bigru, mlp  # noqa: F401  (imported for their Auto registration)

if find_spec("timm") is not None:  # the timm wrapper needs the [vision] extra
    from hf_tasks.modeling import timm_model  # noqa: F401
