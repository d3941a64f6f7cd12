"""hf-tasks: fine-tuning recipes on Hugging Face Trainer + accelerate, as one command.

    hf-tasks list                                           the recipes and their configs, one line each
    hf-tasks run farstail --config tiny [--flag value ...]  a run: a packaged config by name, or a path
    hf-tasks run farstail --config farstail/parsbert --num_processes 8   several processes (accelerate;
                                                            torchrun on CPU)
    hf-tasks study CONFIGS... --output_dir DIR [...]        many runs, one table (python -m hf_tasks.study)
    hf-tasks compare RUN_A RUN_B                            two runs, example by example
    hf-tasks fetch NAME                                     a seed dataset into data/NAME
    hf-tasks export RUN [--quantize int8]                   a run folder to ONNX

`hf-tasks COMMAND --help` says more; `hf-tasks run RECIPE --help` lists the recipe's options. The ways
without it keep working: `accelerate launch recipes/farstail.py --config ...`, `python -m hf_tasks.study`,
`python -m hf_tasks.data.fetch`, `python -m hf_tasks.export`.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Callable

from hf_tasks import help_cache, registry
from hf_tasks.launch import take_option
from hf_tasks.errors import BadInputError, one_line_errors
from hf_tasks.secrets import shown

PROG = "hf-tasks"
# The commands that are another module's command line, by the module whose main(argv) they call.
DELEGATED = {"study": "hf_tasks.study.cli", "compare": "hf_tasks.study.compare", "fetch": "hf_tasks.data.fetch",
             "export": "hf_tasks.export"}
NUM_PROCESSES_FLAG = "--num_processes"


def list_recipes(argv: list[str]) -> int:
    """One line per recipe: its name, its configs and its summary."""
    names = registry.recipe_names()
    width = max(map(len, names))
    for name in names:
        configs = registry.configs(name)
        shown = f"configs: {', '.join(configs)}" if configs else "no configs"
        print(f"{name:<{width}}  {registry.summary(name)} [{shown}]")
    return 0


def run_recipe(argv: list[str]) -> int:
    """`run RECIPE [--config NAME|PATH] [--num_processes N] [flags]`."""
    if not argv or argv[0].startswith("-"):
        raise BadInputError(f"name the recipe: {PROG} run RECIPE --config NAME|PATH [--flag value ...] (the recipes: "
                            f"{', '.join(registry.recipe_names())}).")
    name, rest = registry.check_name(argv[0]), argv[1:]
    sys.argv[0] = f"{PROG} run {name}"  # the usage line of the recipe's help
    help_cache.answer_from_cache(registry.recipe_path(name), rest)
    config, rest = take_option(rest, "--config")
    if config is not None:
        rest = ["--config", str(registry.find_config(config, recipe=name)), *rest]
    processes, rest = take_option(rest, NUM_PROCESSES_FLAG)
    count = _process_count(processes)
    if count > 1:
        import torch

        from hf_tasks.launch import launch_prefix

        command = [*launch_prefix(count, on_gpus=torch.cuda.is_available()), str(registry.recipe_path(name)), *rest]
        print(shown(command), flush=True)
        return subprocess.run(command).returncode
    registry.load(name).cli(rest)
    return 0


def _process_count(text: str | None) -> int:
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise BadInputError(f"{NUM_PROCESSES_FLAG} {text}: give a whole number of processes, 1 or more "
                            f"(see {PROG} --help).")
    return int(text)


def delegated(module_name: str) -> Callable[[list[str]], int]:
    def command(argv: list[str]) -> int:
        # A cached --help answers before the module's imports.
        source = help_cache.PACKAGE_ROOT.parent.joinpath(*module_name.split(".")).with_suffix(".py")
        help_cache.answer_from_cache(source, argv)
        result = importlib.import_module(module_name).main(argv)
        return result if isinstance(result, int) else 0
    return command


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "list": list_recipes,
    "run": run_recipe,
    **{name: delegated(module) for name, module in DELEGATED.items()},
}


def main(argv: list[str] | None = None) -> int:
    with one_line_errors():  # takes --debug out of sys.argv
        argv = sys.argv[1:] if argv is None else list(argv)
        if not argv or argv[0] in help_cache.HELP_FLAGS:
            print(__doc__.strip())
            return 0
        command = COMMANDS.get(argv[0])
        if command is None:
            raise BadInputError(f"{argv[0]}: no such command; the commands are {', '.join(COMMANDS)} "
                                f"(see {PROG} --help).")
        sys.argv[0] = f"{PROG} {argv[0]}"
        return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
