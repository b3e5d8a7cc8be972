"""Reconstruction methods not trained by Lightning, and what they share."""
