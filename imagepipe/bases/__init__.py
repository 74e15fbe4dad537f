"""Where an image's base comes from: a bootstrapped Debian rootfs on a GPT+GRUB disk, an installed
ISO, the kernel check before a build, the freshness of a base.
"""
