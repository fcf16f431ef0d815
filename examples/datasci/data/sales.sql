-- The orders the analysis reads; prepare.py turns this into data/sales.db.
CREATE TABLE sales (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    region TEXT NOT NULL,
    product TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
INSERT INTO sales (id, day, region, product, amount_cents) VALUES
    (1, '2026-01-05', 'north', 'sensor', 12950),
    (2, '2026-01-05', 'south', 'gateway', 48000),
    (3, '2026-01-06', 'north', 'gateway', 48000),
    (4, '2026-01-07', 'west', 'sensor', 12950),
    (5, '2026-01-07', 'south', 'sensor', 25900),
    (6, '2026-01-08', 'north', 'cable', 1999),
    (7, '2026-01-09', 'west', 'gateway', 96000),
    (8, '2026-01-09', 'south', 'cable', 3998);
