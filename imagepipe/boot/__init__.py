"""The boot test: booting an image in qemu on a platform's hardware and firmware, with a
datasource, and reading how far it got.
"""
