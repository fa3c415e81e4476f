"""Every warehouse entity in and out of files: CSV, JSON, JSON Lines, XML and Parquet.

``export`` streams an entity's table to a file; ``imports`` reads a file back in through
the sync engine (``pipeline.sync.EntitySync`` in its "import" mode), so a file's records are
validated, loaded and quarantined exactly as a sync's are. ``entities`` says which columns a
file carries (the README's warehouse contract) and ``read`` parses each format.
"""
