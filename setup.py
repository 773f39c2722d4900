"""Installs fnas_keras; the metadata lives in setup.cfg."""

import setuptools

setuptools.setup()
