"""Analyses that run models: need torch and ctnn-models (``pip install ctnn-analysis[models]``).

Imported lazily by :mod:`ctnn.analysis`, so that the torch-free part never loads torch.
"""
