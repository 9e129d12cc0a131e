"""Provisor: a SCIM 2.0 service provider for Users and Groups."""

__version__ = "0.1.0"
