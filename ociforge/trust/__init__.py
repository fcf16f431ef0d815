"""Signing keys, cosign-compatible signatures, and artifacts attached by subject (referrers).
"""
