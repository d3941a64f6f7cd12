"""Model surgery: freeze parameters, delete encoder layers, prune attention heads."""

from hf_tasks.surgery.counts import parameter_counts

__all__ = ["parameter_counts"]
