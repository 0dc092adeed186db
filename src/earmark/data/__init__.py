"""Data: manifests, group-disjoint splits, the decode-once cache, dataset loading."""
