"""Data, no I/O: token usage, the handles the API returns, and the records passed between the
stages of the pipeline.
"""
