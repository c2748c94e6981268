"""Deletion at the retention deadline: policy, sweeps, holds and early erasure.

Imports storage only; never recorder, retrieval or config.
"""
