"""The journey's output contract: typed facts per span kind, the document, its schema."""
