"""Values ``Run.log`` takes beside numbers (issue 25): ``em.Histogram``, ``em.Image``, ``em.Table``, ``em.Text``.

:mod:`~em_dist.media.values` holds the classes (checked at the call, nothing expensive);
:mod:`~em_dist.media.encode` turns them into media records on the writer thread;
:mod:`em_dist.store.media` stores those in the run folder and reads them back.
"""

from .values import MEDIA_TYPES, Histogram, Image, Media, Table, Text

__all__ = ["MEDIA_TYPES", "Histogram", "Image", "Media", "Table", "Text"]
