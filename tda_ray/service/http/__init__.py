"""HTTP: the FastAPI app (:func:`~.app.create_app`), the wire models (:mod:`~.models`), middleware,
pictures and one routes module per resource (:mod:`~.routes`).  It hands every request to the jobs layer."""
