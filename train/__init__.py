"""Training: snapshot loader, model, DDP trainer, evaluation and comparison (see docs/training.md)."""
