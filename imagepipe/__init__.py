"""imagepipe: YAML recipe in, sealed cloud-init-ready disk images and oVirt templates out.

Keep this module import-free: `imagepipe --version` must answer in well under 0.3 s, so heavy
libraries (guestfs, the oVirt SDK, imageio, cloud-init's schema) are imported lazily by the
commands that need them.
"""

__version__ = "0.1.0"
