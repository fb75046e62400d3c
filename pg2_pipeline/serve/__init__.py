"""``pg2 serve``: a local page for pose transfer and its JSON API (``POST /api/generate``).

``app.py`` is the Starlette app (routes, errors, the loaded models), ``forms.py`` reads a size-capped
multipart body in memory, ``gallery.py`` lists the dataset's test images and poses, ``static/`` holds the
page. Every image goes through :class:`pg2_pipeline.inference.PoseTransfer`: no model, crop or pose-map code
lives here.
"""
