"""``medsyn run``: the parameter contract, fingerprints, the kernel, run planning and execution."""
