"""The Hydra configs, installed as the data package ``unrolled.conf`` (see setup.py)."""
