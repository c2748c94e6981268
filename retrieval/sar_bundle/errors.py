"""What can go wrong with a subject access bundle, as facts the command line words once.

BundleError
├── BundleRefused      the writer was asked for something it will not make (a bad member
│                      name, a size that does not match, too much for a passphrase)
├── BundleUnopenable   the reader cannot open it: no such file, not age, the wrong
│                      identity or passphrase, a public key that is not one
└── BundleInvalid      opened, and found not to be what its signed manifest says
"""

from __future__ import annotations


class BundleError(Exception):
    """Base of every bundle problem; ``str()`` is one line, safe to show (no secret)."""


class BundleRefused(BundleError):
    """The entries given cannot make a bundle; nothing complete was written."""


class BundleUnopenable(BundleError):
    """The bundle could not be opened with what was given, so nothing about it is known."""


class BundleInvalid(BundleError):
    """The bundle opened but is damaged, altered or forged; the message names the first
    problem found."""
