"""Raw corpora -> token shards (`data.prepare`), shard reading (`data.shards`), the mixture sampler
(`data.sampler`) and the embedded demo corpus (`data/demo/`)."""
