"""Other trackers' formats in and out: TensorBoard event files, CSV and Parquet tables.

Each format is a module of its own that imports its library on first use (``tensorboard``,
``pyarrow``: the optional extra ``em_dist[interop]``); ``em import`` and ``em export`` call them.
"""
