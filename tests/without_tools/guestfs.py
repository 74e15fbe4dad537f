"""Stand-in for python3-guestfs on a machine without libguestfs.

`tests/without_tools/run.py` puts this directory first on PYTHONPATH, so `import guestfs`
fails in the test process and in every `imagepipe` subprocess it starts, exactly as it does
where the Debian package is not installed.
"""

raise ImportError("guestfs is hidden: the fast test selection must not need libguestfs")
