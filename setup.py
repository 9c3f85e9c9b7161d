"""Package discovery only (everything else is in pyproject.toml): ``plugins/`` installs as
``reasonbench_plugins`` and ``benchmarks/`` as ``reasonbench_benchmarks``, which setuptools'
own ``find`` cannot map, so every package under them is found here instead of listed by hand."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["reasonbench", "reasonbench.*"]),
                "reasonbench_plugins", *(f"reasonbench_plugins.{p}" for p in find_packages("plugins")),
                "reasonbench_benchmarks"])
