"""Task families, one module each: features → collate → postprocess → score, built from a `DatasetDict`."""
