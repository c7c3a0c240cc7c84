"""Distributed transport: moves every rank's records to rank 0 over the job's own engine.

Only modules in this package import torch.distributed, Horovod or mpi4py, and only
when a job actually uses them.
"""
