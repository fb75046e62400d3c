"""The input pipeline below training and evaluation: the ``manifests`` asset (Parquet pair tables
and the tensor cache of decoded images), the seeded, resumable pair loader and its ``Batch``."""
