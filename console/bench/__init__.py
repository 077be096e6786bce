"""`console bench …`: benchmarks that print their figures (never timed assertions in the suite).
Each module measures one stage; production code never imports this package."""
