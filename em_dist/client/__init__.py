"""The HTTP side of the SDK: login, upload, background sync and the read client.

Imported lazily by ``em_dist`` (training never needs it unless it uploads).
"""
