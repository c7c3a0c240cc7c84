"""Framework integrations: each module imports its framework only when it is imported itself.

``em_dist.keras`` and ``em_dist.lightning`` sit at the package top (the seed's places);
Hugging Face's live here: ``em_dist.integrations.transformers`` and
``em_dist.integrations.accelerate``. Nothing here is imported by ``import em_dist``.
"""
