"""The one launch-command builder: how a recipe starts as several processes, on one machine or as one node
of several. `hf-tasks run --num_processes N`, the study's local queue and its Slurm jobs all start
multi-process runs through `launch_prefix`, so a fix to how runs are launched is made once.

On GPUs the launcher is accelerate; on CPU it is torchrun, where accelerate would ask for a GPU.
"""

from __future__ import annotations

import sys

from hf_tasks.errors import BadInputError

#: First rendezvous port of a multi-process run; the study adds a run's first slot (or its Slurm job id).
BASE_PORT = 29500


def launch_prefix(processes_per_machine: int, *, on_gpus: bool, port: int = BASE_PORT, machines: int = 1,
                  machine_rank: int = 0, main_host: str | None = None) -> list[str]:
    """The command that starts a recipe script (appended after it) as `processes_per_machine` processes on
    this machine. For one node of a multi-node job (`main_host`: the rendezvous host), `machine_rank` is
    this node's rank and `machines` their number."""
    if on_gpus:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        if main_host is not None:
            command += ["--num_machines", str(machines), "--machine_rank", str(machine_rank),
                        "--main_process_ip", main_host]
        return command + ["--main_process_port", str(port), "--num_processes", str(machines * processes_per_machine)]
    command = [sys.executable, "-m", "torch.distributed.run"]
    if main_host is not None:
        command += ["--nnodes", str(machines), "--node_rank", str(machine_rank), "--master_addr", main_host]
    return command + ["--master_port", str(port), "--nproc_per_node", str(processes_per_machine)]


def take_option(argv: list[str], flag: str) -> tuple[str | None, list[str]]:
    """The value of `flag` (`--flag v` or `--flag=v`; the last one given) and `argv` without it: how a command
    line is passed on without an option its launcher handles itself."""
    value, kept, index = None, [], 0
    while index < len(argv):
        option, equals, attached = argv[index].partition("=")
        if option == flag:
            if not equals and index + 1 >= len(argv):
                raise BadInputError(f"{flag} needs a value.")
            value = attached if equals else argv[index + 1]
            index += 1 if equals else 2
            continue
        kept.append(argv[index])
        index += 1
    return value, kept
