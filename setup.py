"""Packaging beyond what pyproject.toml can say: the Hydra configs ship inside the package.

``conf/`` stays at the top of the repository (where users and docs expect it) and is
installed as the data package ``unrolled.conf`` (``package_dir`` maps one onto the other),
so that a wheel, ``pip install .`` and the editable install all find the configs through
``importlib.resources.files("unrolled.conf")`` (see ``unrolled/cli/common.py``).
``find_packages`` keeps every ``unrolled.*`` subpackage without a list to maintain.
"""

from setuptools import find_packages, setup

setup(
    # hydra_plugins.unrolled_optuna_sweeper: Hydra loads sweepers only from hydra_plugins
    packages=[
        *find_packages(include=["unrolled", "unrolled.*"]),
        "unrolled.conf",
        "hydra_plugins",  # a namespace package: listed so that editable installs map it
        "hydra_plugins.unrolled_optuna_sweeper",
    ],
    package_dir={"unrolled.conf": "conf"},
)
