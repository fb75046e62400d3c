"""Pairs and manifests: same-identity pair mining, the standard test pairs, Parquet manifests,
the tensor cache and the training loader."""
