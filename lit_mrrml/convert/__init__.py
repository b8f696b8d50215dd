"""``python -m lit_mrrml convert``: preference data in other formats (TRL pairs, ranked or scored
lists; JSONL, JSON, parquet, ``datasets`` folders) to ranked units, and ranked units to TRL pairs.

Light on purpose: neither this package nor lit_mrrml.convert.command imports torch, transformers or
Lightning (they read through lit_mrrml.data.units and lit_mrrml.data.formats only).
"""
