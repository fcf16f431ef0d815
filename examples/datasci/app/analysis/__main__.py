"""``python -m analysis``: what the notebook found, as a program.

Reads the orders snapshot (``$SALES_DATA/sales.csv``, a table ociforge exported
from SQLite), totals them per region with the ``salesmetrics`` library from the
virtual environment, and says which project files came along.
"""

import csv
import json
import os
import sys
from pathlib import Path

import salesmetrics


def main() -> int:
    data = Path(os.environ.get("SALES_DATA", "data"))
    with open(data / "sales.csv", newline="") as handle:
        orders = list(csv.DictReader(handle))
    currency = os.environ.get("SALES_CURRENCY", "?")
    for region, cents in salesmetrics.totals(orders, "region", "amount_cents").items():
        print(f"{region}: {salesmetrics.money(cents)} {currency}")
    amounts = [int(order["amount_cents"]) for order in orders]
    print(f"orders: {len(orders)}, mean {salesmetrics.money(salesmetrics.mean(amounts))} "
          f"{currency}")
    print(f"salesmetrics {salesmetrics.__version__} on Python "
          f"{sys.version_info.major}.{sys.version_info.minor} in {sys.prefix}")
    notebook = Path("/files/notebooks/explore.ipynb")
    if notebook.exists():
        cells = json.loads(notebook.read_text())["cells"]
        print(f"notebook: {notebook.name} ({len(cells)} cells)")
    print("warehouse password: " + ("present" if "WAREHOUSE_PASSWORD" in os.environ
                                    else "not in the image"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
