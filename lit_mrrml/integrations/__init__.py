"""Bridges to other training frameworks: ``lit_mrrml.integrations.trl`` (Hugging Face TRL).

Nothing is imported here: each bridge imports its framework only when used.
"""
