"""Encryption of recordings: the SGRC segmented format, the spool and sealed writer that
produce it, and the reader that opens a stored object and verifies what it serves."""
