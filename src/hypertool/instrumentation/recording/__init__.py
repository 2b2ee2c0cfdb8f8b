"""② Recording: a finished call becomes a span, a budget entry and a record for the listeners
(metrics), on the recorder thread (:mod:`.deferred`), never on the caller's path.
"""
