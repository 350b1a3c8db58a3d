"""Data: triples files (CSV/TSV/JSONL, webdataset shards), the torch data set over them, triples
from captioned photo sets, the embedded shapes world and the galleries the app searches."""
