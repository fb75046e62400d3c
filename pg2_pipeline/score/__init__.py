"""Scoring any pose-transfer method's outputs under each published lineage's protocol (``pg2 score``).

* :mod:`.layouts` — readers that turn a folder or CSV of generated images into (condition, target, image)
  items and report every file and pair they could not use
"""
