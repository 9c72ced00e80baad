"""interplab: a JupyterLab workbench for looking inside transformer language models."""

__version__ = "0.1.0"
