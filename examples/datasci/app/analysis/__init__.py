"""Sales analysis: totals per region from the orders table snapshot."""
