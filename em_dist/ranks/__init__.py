"""The rank layer: moves every rank's records to rank 0 over the job's own engine.

Only modules in this package import torch.distributed, Horovod or mpi4py, and only
when a job actually uses them. The map:

- :mod:`.world`     where this process sits in the job (``detect_world``), read-only
- :mod:`.timing`    every wait and interval of the layer (``RankTimings``)
- :mod:`.channel`   the contract of an engine: ``PeerChannel`` (peers) and ``RootChannel`` (rank 0)
- :mod:`.engines`   the table of engines and the one that fits a job
- :mod:`.frames`    the engine-neutral frame protocol over a point-to-point ``Wire``
- :mod:`.relay`     node leaders: a node's ranks reach rank 0 through their local rank 0
- :mod:`.gloo`      em_dist's own two-process gloo groups, built from the job's store
- :mod:`.mpi`       point-to-point on ``COMM_WORLD`` under em_dist's tag
- :mod:`.deferred`  waits for the script to start an engine, never starts one itself
- :mod:`.horovod`   a channel over Horovod's collectives
- :mod:`.root`      rank 0's sink: the writer plus what the peers send
- :mod:`.peer`      the other ranks' sink: one thread that forwards to rank 0
- :mod:`.artifacts` artifacts of non-zero ranks, chunked into rank 0's run folder
- :mod:`.signals`   SIGTERM/SIGINT: finish as Failed, then hand the signal on
- :mod:`.attach`    ``open_sink``, the one call ``Run.__init__`` makes
- :mod:`.host`      ``RunHost``, what fork, spawn and late join may do to a Run (they touch nothing else of it)
"""
