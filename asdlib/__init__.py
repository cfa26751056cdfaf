"""asdlib: unsupervised anomalous sound detection for machine condition monitoring (DCASE2020 Task 2).

Importing the package has no side effects; submodules are imported where used.
"""
__version__ = "0.1.0"
