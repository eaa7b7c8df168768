"""Labels: crowd votes aggregated (majority vote, Dawid-Skene, one-coin) and combined with the labels sources carry.

Modules: ``vocabulary`` (class list, synonyms, the unknown-label check), ``methods`` (the aggregation
algorithms), ``aggregate`` (per-item outcomes), ``workers`` (the worker model), ``inputs`` (votes, gold,
source labels), ``policy`` (crowd vs source labels), ``report`` (accuracy, summary, metrics), ``stage``
(the DVC stage ``python -m transform.labels``) and ``commands`` (``sluice labels ...``).
"""

from transform.labels.commands import register

__all__ = ["register"]
