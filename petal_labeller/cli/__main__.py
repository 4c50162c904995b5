"""`python -m petal_labeller.cli`: the same as the `petal` script."""

from petal_labeller.cli import main

main(prog_name="petal")
