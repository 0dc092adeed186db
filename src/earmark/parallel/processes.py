"""The processes of one data-parallel training, as ``torchrun`` starts them.

``torchrun --nproc-per-node N -m earmark train ...`` starts N copies of the
command and tells each its place through the environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, and the rendezvous
address). A command started without torchrun is the one process of a world
of one, and nothing here talks to anything.

The training contract (see :mod:`earmark.train`): ``train.batch_size`` is
the *global* batch, split evenly over the processes, and
``train.learning_rate`` is the rate for that global batch, so the same config
trains the same model on one process or on many. Every process draws the same
epoch plan from ``(seed, epoch)`` and takes its share of each global batch.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from earmark.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a process waits for the others at a collective before the job fails
#: (decoding a large manifest on local rank 0 happens while the others wait).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one training."""

    rank: int = 0                 #: 0 .. world_size - 1; rank 0 writes the run folder
    local_rank: int = 0           #: the rank among the processes of this machine
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """The process that writes the run folder, logs and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_environment(environ: dict[str, str] | None = None) -> Processes:
    """The place torchrun gave this process; a world of one without torchrun.

    Raises
    ------
    ConfigError
        When the variables torchrun sets are inconsistent.
    """
    environ = os.environ if environ is None else environ
    try:
        processes = Processes(int(environ.get("RANK", 0)), int(environ.get("LOCAL_RANK", 0)),
                              int(environ.get("WORLD_SIZE", 1)),
                              int(environ.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError as error:
        raise ConfigError(f"RANK/LOCAL_RANK/WORLD_SIZE must be integers ({error}); start "
                          "several processes with torchrun") from error
    if not (0 <= processes.rank < processes.world_size
            and 0 <= processes.local_rank < processes.local_world_size <= processes.world_size):
        raise ConfigError(f"inconsistent process place {processes}; start several processes "
                          "with torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE")
    return processes


def start(processes: Processes, device_name: str) -> torch.device:
    """Join the process group (gloo on CPU, NCCL on GPUs); the device this process uses.

    Parameters
    ----------
    device_name : str
        ``train.device``: ``auto``, ``cpu`` or ``cuda``. With several processes
        on GPUs, each process takes the GPU of its local rank.
    """
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is available; use 'auto'")
    if not processes.distributed:
        return torch.device("cuda" if cuda else "cpu")
    if cuda and processes.local_world_size > torch.cuda.device_count():
        raise ConfigError(f"{processes.local_world_size} processes per machine but "
                          f"{torch.cuda.device_count()} GPU(s); start at most one per GPU "
                          "(--nproc-per-node)")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing and not dist.is_initialized():
        raise ConfigError(f"WORLD_SIZE={processes.world_size} but {' and '.join(missing)} "
                          "not set: start the processes with torchrun (torchrun "
                          "--nproc-per-node N -m earmark train ...), which sets them")
    device = torch.device(f"cuda:{processes.local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        logger.info("process %d of %d: waiting for the others at %s:%s", processes.rank,
                    processes.world_size, os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"])
        dist.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                **({"device_id": device} if cuda else {}))
    logger.info("process %d of %d (%s, %s)", processes.rank, processes.world_size,
                dist.get_backend(), device)
    return device


def stop(processes: Processes) -> None:
    """Leave the process group (after the last collective)."""
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(processes: Processes) -> None:
    """Wait until every process has come here."""
    if processes.distributed:
        dist.barrier()


def local_batch_size(global_batch: int, processes: Processes) -> int:
    """Each process's share of ``train.batch_size``.

    Raises
    ------
    ConfigError
        When the global batch does not split evenly over the processes.
    """
    if global_batch % processes.world_size:
        raise ConfigError(f"train.batch_size = {global_batch} does not split evenly over "
                          f"{processes.world_size} processes; use a multiple of "
                          f"{processes.world_size} (it is the global batch)")
    return global_batch // processes.world_size


def share(items: Sequence[T], processes: Processes) -> list[T]:
    """This process's share of ``items``: every ``world_size``-th, from its rank."""
    return list(items[processes.rank::processes.world_size])


def sum_over(processes: Processes, values: Sequence[float],
             device: torch.device | None = None) -> list[float]:
    """Element-wise sums of ``values`` over all processes (float64)."""
    if not processes.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(processes: Processes, value: T) -> list[T]:
    """Every process's ``value``, in rank order (small objects: reports, scores)."""
    if not processes.distributed:
        return [value]
    gathered: list = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered
