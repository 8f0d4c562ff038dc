"""The seqio layer: benchmark adapters and generators, vocabularies, tasks, manifests."""
