"""hf_tasks: fine-tuning recipes on Hugging Face Trainer + accelerate."""

__version__ = "0.1.0"
