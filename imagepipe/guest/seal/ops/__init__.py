"""One module per seal operation; each registers itself with imagepipe.guest.seal.register."""
