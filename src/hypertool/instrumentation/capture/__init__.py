"""① Capture: an LLM call becomes a
:class:`~hypertool.instrumentation.model.records.GenerationInput`.

On the caller's path only the cheap part happens: the call's context is resolved once
(:mod:`.resolution`), the budget is checked, the clock is read, and the outcome is snapshotted
(text and raw usage, or a stream's items). Parsing and recording are handed to the recorder
thread through a :class:`~.target.Target` (the integration), which this layer never imports.
"""
