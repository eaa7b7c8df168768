"""Sluice: an open data lakehouse for training image models."""

__version__ = "0.1.0"
