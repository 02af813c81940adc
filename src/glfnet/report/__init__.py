"""Reports: results tables, figures and run comparisons built from run directories."""
