"""Distributed transport: moves every rank's records to rank 0 over the job's own engine.

Only modules in this package import torch.distributed, Horovod or mpi4py, and only
when a job actually uses them. The map:

- :mod:`.env`        where this process sits in the job (``detect_world``), read-only
- :mod:`.select`     which engine carries the records; the run's nonce
- :mod:`.channel`    the ``Channel`` contract every engine implements
- :mod:`.p2p`        the engine-neutral frame protocol over a point-to-point ``Wire``
- :mod:`.torch_gloo` em_dist's own two-process gloo groups, built from the job's store
- :mod:`.mpi`        point-to-point on ``COMM_WORLD`` under em_dist's tag
- :mod:`.lazy`       waits for the script to start an engine, never starts one itself
- :mod:`.horovod`    a ``Channel`` over Horovod's collectives
- :mod:`.sinks`      what a Run writes through: rank 0's collector, the other ranks' sender
- :mod:`.ship`       artifacts of non-zero ranks, chunked into rank 0's run folder
- :mod:`.signals`    SIGTERM/SIGINT: finish as Failed, then hand the signal on
- :mod:`.attach`     the one call ``Run.__init__`` makes
"""
