"""What a built image contains: its installed packages, an SPDX SBOM of them, and the
difference between two published versions (`imagepipe templates diff`)."""
