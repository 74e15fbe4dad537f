"""Debian repositories: a recipe's apt sources (deb822, as the image ships them) and the resolution
of an exact package set against them.
"""
