"""People in, audio out: authentication, need-to-know access, grants and Range playback.

Imports storage only; never recorder, retention or config.
"""
