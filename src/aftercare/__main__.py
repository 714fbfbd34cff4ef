"""`python -m aftercare ...`: the same as the `aftercare` command."""

from aftercare.cli import app

app(prog_name="aftercare")
