"""Work inside the guest in one appliance launch: customize, inject the seed, seal (the seal
registry, its operations and lints), the last lean step.
"""
