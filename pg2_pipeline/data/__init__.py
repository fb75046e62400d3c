"""The data domain: dataset names and layouts, standard files, the synthetic twin, ingest."""
