"""PG² training: one loop (:mod:`.loop`) over two stage objects, :class:`~.stage1.Stage1` (G1)
and :class:`~.stage2.Stage2` (G2 + D)."""
