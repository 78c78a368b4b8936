"""Tenants' records in databases: where they are (targets, presets) and how they are deleted.

``targets`` describes tables as the engine sees them; ``postgres`` is the
engine (batched, resumable deletes with short transactions); ``litellm`` is
the preset for the LiteLLM proxy schema.
"""
